"""NATS and PostgreSQL for ``cogwheel up``: given by URL, or embedded under the data directory."""

import contextlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from cogwheel.state import State
from libs.infra import EmbeddedNats, EmbeddedPostgres

__all__ = ["Servers", "database_for_command", "servers_for_command"]


@dataclass
class Servers:
    """The two servers a stack needs; only embedded ones are started and stopped here."""

    data_dir: Path
    nats_url: str = ""
    database_url: str = ""
    _nats: EmbeddedNats | None = field(default=None, repr=False)
    _postgres: EmbeddedPostgres | None = field(default=None, repr=False)

    async def start(self) -> None:
        self.nats_url = os.environ.get("COGWHEEL_NATS_URL", "")
        self.database_url = os.environ.get("COGWHEEL_DATABASE_URL", "")
        if not self.nats_url:
            self._nats = EmbeddedNats(self.data_dir / "nats")
            self.nats_url = await self._nats.astart()
        if not self.database_url:
            self._postgres = EmbeddedPostgres(self.data_dir / "pgdata")
            self.database_url = await self._postgres.astart()

    async def stop(self) -> None:
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
