"""Composition root of billing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.bus.nats import Bus, connect
from libs.bus.relay import OutboxRelay
from libs.bus.subjects import event_subject
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.events import Envelope
from libs.eventstore import EventStore
from services.billing.adapters.postgres import unit_of_work_factory
from services.billing.domain.usage import USAGE_RECORDED
from services.billing.ports import UnitOfWorkFactory
from services.billing.projections import SCHEMA
from services.billing.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def subject_for(event: Envelope) -> str | None:
    return event_subject("billing", event.type) if event.type == USAGE_RECORDED else None


@dataclass(frozen=True)
class Deps:
    settings: Settings
    engine: AsyncEngine
    store: EventStore
    bus: Bus
    relay: OutboxRelay
    unit_of_work: UnitOfWorkFactory

    async def close(self) -> None:
        await self.bus.close()
        await self.engine.dispose()


async def bootstrap(settings: Settings, *, bus: Bus | None = None) -> Deps:
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    if bus is None:
        bus = await connect(settings.nats_url, name=f"billing{settings.instance_id}")
    await bus.ensure_streams()
    engine = create_engine(settings.database_url)
    relay = OutboxRelay(engine, SCHEMA, bus, database_url=settings.database_url)
    store = EventStore(engine, SCHEMA, subject_for=subject_for, on_commit=relay.wake)
    return Deps(settings, engine, store, bus, relay, unit_of_work_factory(store))


def offline_store(settings: Settings) -> EventStore:
    """The event store alone, for rebuilding projections without NATS."""
    return EventStore(create_engine(settings.database_url), SCHEMA)
