"""NATS and PostgreSQL for ``cogwheel up``: given by URL, or embedded under the data directory."""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from cogwheel.credentials import Credentials
from cogwheel.state import State
from libs.infra import EmbeddedNats, EmbeddedPostgres, InfraError

__all__ = ["Servers", "database_for_command", "servers_for_command"]


@dataclass
class Servers:
    """The two servers a stack needs; only embedded ones are started and stopped here.

    An embedded NATS checks the per-service users of ``credentials``; then ``nats_url`` carries the admin
    user (for migrations, seeding, one-off commands) and ``service_nats_url`` none (each service brings its
    own). Likewise an embedded PostgreSQL requires passwords and each service logs in as its schema's role
    (``database_roles``). Given ``COGWHEEL_NATS_URL``/``COGWHEEL_DATABASE_URL`` are used as they are, by
    every service, credentials in them included.
    """

    data_dir: Path
    nats_url: str = ""
    database_url: str = ""
    credentials: Credentials | None = None
    _nats: EmbeddedNats | None = field(default=None, repr=False)
    _postgres: EmbeddedPostgres | None = field(default=None, repr=False)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _stopping: bool = field(default=False, repr=False)
    # Seconds before the first restart of a server that died (doubling up to 30 s while it keeps dying).
    restart_backoff: float = 1.0

    @property
    def nats_users(self) -> bool:
        """Whether the NATS server checks the per-service users (only an embedded one we configured)."""
        return self._nats is not None and self.credentials is not None

    @property
    def database_roles(self) -> bool:
        """Whether each service gets a role of its own (only on an embedded PostgreSQL we configured)."""
        return self._postgres is not None and self.credentials is not None

    @property
    def service_nats_url(self) -> str:
        return self._nats.url if self._nats is not None and self.nats_users else self.nats_url

    async def start(self) -> None:
        self.nats_url = os.environ.get("COGWHEEL_NATS_URL", "")
        self.database_url = os.environ.get("COGWHEEL_DATABASE_URL", "")
        if not self.nats_url:
            config = self.credentials.nats_config(_runner_hardware()) if self.credentials else None
            self._nats = EmbeddedNats(self.data_dir / "nats", config=config)
            self.nats_url = await self._nats.astart()
            if self.credentials is not None:
                user, password = self.credentials.admin_nats()
                self.nats_url = with_user(self.nats_url, user, password)
        if not self.database_url:
            password = self.credentials.postgres_superuser_password if self.credentials else None
            self._postgres = EmbeddedPostgres(self.data_dir / "pgdata", password=password)
            self.database_url = await self._postgres.astart()

    def supervise(self, notify: Callable[[str], None], on_restart: Callable[[], None] = lambda: None) -> None:
        """Restart an embedded server that dies, on its port and data, with backoff; say so on the console.

        Only servers started here are watched; given ones belong to whoever runs them.
        """
        for name, server in (("nats", self._nats), ("postgres", self._postgres)):
            if server is not None:
                self._watchers.append(
                    asyncio.create_task(self._watch(name, server, notify, on_restart), name=f"watch-{name}")
                )

    async def _watch(
        self, name: str, server: EmbeddedNats | EmbeddedPostgres, notify: Callable[[str], None],
        on_restart: Callable[[], None],
    ) -> None:
        backoff = self.restart_backoff
        while not self._stopping:
            started = time.monotonic()
            # Polling also reaps the exited child: a zombie would still own its pid, and PostgreSQL refuses to
            # start while the pid in postmaster.pid is alive.
            while not self._stopping and server.running():
                await asyncio.sleep(0.2)
            if self._stopping:
                return
            if time.monotonic() - started > 60:
                backoff = self.restart_backoff
            notify(f"{name} exited with code {server.exit_code()}; restarting in {backoff:.0f}s")
            while not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                try:
                    await server.arestart()
                except InfraError as exc:
                    notify(f"{name} did not come back: {exc}; retrying in {backoff:.0f}s")
                    continue
                notify(f"{name} is back (pid {server.pid})")
                on_restart()
                break

    async def stop(self) -> None:
        self._stopping = True
        for task in self._watchers:
            task.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        self._watchers.clear()
        if self._postgres is not None:
            await self._postgres.astop()
        if self._nats is not None:
            await self._nats.astop()

    def pids(self) -> dict[str, int | None]:
        return {
            "nats": self._nats.pid if self._nats else None,
            "postgres": self._postgres.pid if self._postgres else None,
        }


def with_user(url: str, user: str, password: str) -> str:
    """``nats://host:port`` with ``user:password@`` in it."""
    parts = urlsplit(url)
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _runner_hardware() -> tuple[str, ...]:
    # The runners of a local installation serve the hardware their environment names (cpu by default).
    return (os.environ.get("COGWHEEL_HARDWARE") or "cpu",)


async def migrate_database(database_url: str, credentials: Credentials | None) -> dict[str, list[str]]:
    """Apply every schema's migrations as the administrator, then (with ``credentials``, on the embedded
    server) hand each schema to its service's role."""
    from libs.db.migrations import migrate_all
    from libs.db.roles import ensure_service_roles

    applied = await migrate_all(database_url)
    if credentials is not None:
        await ensure_service_roles(database_url, credentials.schema_passwords())
    return applied


@contextlib.asynccontextmanager
async def servers_for_command(data_dir: Path) -> AsyncIterator[Servers]:
    """Both servers for a one-off command: those of a running ``cogwheel up``, else given or embedded ones."""
    state = State.load(data_dir)
    if state.running() and state.database_url and state.nats_url:
        yield Servers(data_dir, nats_url=state.nats_url, database_url=state.database_url)
        return
    servers = Servers(data_dir, credentials=Credentials.ensure(data_dir))
    await servers.start()
    try:
        yield servers
    finally:
        await servers.stop()


@contextlib.asynccontextmanager
async def database_for_command(data_dir: Path) -> AsyncIterator[str]:
    """The database a one-off command (``migrate``...) should use.

    ``COGWHEEL_DATABASE_URL`` if set, else the one of a running ``cogwheel up``, else the embedded
    cluster under ``data_dir`` started just for the duration of the command.
    """
    given = os.environ.get("COGWHEEL_DATABASE_URL")
    state = State.load(data_dir)
    if given:
        yield given
    elif state.running() and state.database_url:
        yield state.database_url
    else:
        password = Credentials.ensure(data_dir).postgres_superuser_password
        server = EmbeddedPostgres(data_dir / "pgdata", password=password)
        await server.astart()
        try:
            yield server.url
        finally:
            await server.astop()
