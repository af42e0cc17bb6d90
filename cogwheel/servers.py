"""NATS and PostgreSQL for ``cogwheel up``: given by URL, or embedded under the data directory."""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cogwheel.state import State
from libs.infra import EmbeddedNats, EmbeddedPostgres, InfraError

__all__ = ["Servers", "database_for_command", "servers_for_command"]


@dataclass
class Servers:
    """The two servers a stack needs; only embedded ones are started and stopped here."""

    data_dir: Path
    nats_url: str = ""
    database_url: str = ""
    _nats: EmbeddedNats | None = field(default=None, repr=False)
    _postgres: EmbeddedPostgres | None = field(default=None, repr=False)
    _watchers: list[asyncio.Task[None]] = field(default_factory=list, repr=False)
    _stopping: bool = field(default=False, repr=False)
    # Seconds before the first restart of a server that died (doubling up to 30 s while it keeps dying).
    restart_backoff: float = 1.0

    async def start(self) -> None:
        self.nats_url = os.environ.get("COGWHEEL_NATS_URL", "")
        self.database_url = os.environ.get("COGWHEEL_DATABASE_URL", "")
        if not self.nats_url:
            self._nats = EmbeddedNats(self.data_dir / "nats")
            self.nats_url = await self._nats.astart()
        if not self.database_url:
            self._postgres = EmbeddedPostgres(self.data_dir / "pgdata")
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


@contextlib.asynccontextmanager
async def servers_for_command(data_dir: Path) -> AsyncIterator[Servers]:
    """Both servers for a one-off command: those of a running ``cogwheel up``, else given or embedded ones."""
    state = State.load(data_dir)
    if state.running() and state.database_url and state.nats_url:
        yield Servers(data_dir, nats_url=state.nats_url, database_url=state.database_url)
        return
    servers = Servers(data_dir)
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
        server = EmbeddedPostgres(data_dir / "pgdata")
        await server.astart()
        try:
            yield server.url
        finally:
            await server.astop()
