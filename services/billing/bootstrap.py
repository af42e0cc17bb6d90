"""Composition root of billing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.bus.nats import Bus, connect
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from services.billing.adapters.postgres import unit_of_work_factory
from services.billing.ports import UnitOfWorkFactory
from services.billing.projections import SCHEMA
from services.billing.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Deps:
    settings: Settings
    engine: AsyncEngine
    store: EventStore
    bus: Bus
    unit_of_work: UnitOfWorkFactory

    async def close(self) -> None:
        await self.bus.close()
        await self.store.close()
        await self.engine.dispose()


async def bootstrap(settings: Settings, *, bus: Bus | None = None) -> Deps:
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    if bus is None:
        bus = await connect(settings.nats_url, name=f"billing{settings.instance_id}")
    await bus.ensure_streams()
    engine = create_engine(settings.database_url)
    # Nothing consumes billing's events (the usage table is its interface): they stay in its log, with no outbox
    # row, relay or stream message per prediction.
    store = EventStore(engine, SCHEMA)
    return Deps(settings, engine, store, bus, unit_of_work_factory(store))


def offline_store(settings: Settings) -> EventStore:
    """The event store alone, for rebuilding projections without NATS."""
    return EventStore(create_engine(settings.database_url), SCHEMA)
