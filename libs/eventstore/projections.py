"""Read models derived from an event log, and rebuilding them from scratch."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import text

from libs.events import Envelope
from libs.eventstore.store import EventStore, Transaction


class Projection(Protocol):
    name: str

    # Read-only, so a projection may declare the exact tuple of its tables.
    @property
    def tables(self) -> tuple[str, ...]: ...

    async def apply(self, tx: Transaction, event: Envelope) -> None: ...


async def rebuild_from_log(store: EventStore, projections: Sequence[Projection]) -> int:
    """Empty the projections' tables and replay the whole log, in one transaction.

    Readers never see a half-built view.
    """
    count = 0
    async with store.transaction() as tx:
        for projection in projections:
            for table in projection.tables:
                await tx.conn.execute(text(f"TRUNCATE {store.schema}.{table}"))
        async for event in store.iterate_all():
            for projection in projections:
                await projection.apply(tx, event)
            count += 1
    return count


async def rebuild_all(database_url: str, service: str | None = None, nats_url: str | None = None) -> dict[str, int]:
    """Run `python -m services.<svc> rebuild-projections` for each service (or one): each knows its own views."""
    from libs.db.migrations import service_schemas

    services = [service] if service else list(service_schemas())
    results: dict[str, int] = {}
    env = {**os.environ, "COGWHEEL_DATABASE_URL": database_url}
    if nats_url:
        env["COGWHEEL_NATS_URL"] = nats_url
    for name in services:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"services.{name}", "rebuild-projections", env=env
        )
        results[name] = await process.wait()
    return results
