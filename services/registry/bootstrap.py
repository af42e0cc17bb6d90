"""Composition root of the registry: engine, event store, projections, views and the outbox relay."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.bus.nats import Bus
from libs.bus.relay import OutboxRelay
from libs.bus.subjects import event_subject
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.events import Envelope
from libs.eventstore import EventStore
from libs.eventstore.projections import Projection, rebuild_from_log
from libs.hardware import HardwareCatalog, load_catalog
from services.registry.adapters.postgres import unit_of_work_factory
from services.registry.adapters.postgres_views import PostgresViews
from services.registry.domain.events import EVENT_TYPES
from services.registry.ports import Clock, RegistryViews, UnitOfWorkFactory
from services.registry.projections import SCHEMA, RegistryProjection
from services.registry.settings import Settings

SERVICE = "registry"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


def subject_for(event: Envelope) -> str | None:
    """`model.created` is published on `registry.events.model.created`."""
    return event_subject(SERVICE, event.type) if event.type in EVENT_TYPES else None


@dataclass(frozen=True)
class Deps:
    settings: Settings
    engine: AsyncEngine
    store: EventStore
    projections: tuple[Projection, ...]
    uow: UnitOfWorkFactory
    views: RegistryViews
    clock: Clock
    relay: OutboxRelay | None
    # The SKUs deployments may run on (COGWHEEL_HARDWARE_CATALOG or the shipped default).
    hardware: HardwareCatalog

    async def close(self) -> None:
        await self.store.close()
        await self.engine.dispose()


def bootstrap(
    settings: Settings, *, bus: Bus | None = None, clock: Clock | None = None, hardware: HardwareCatalog | None = None
) -> Deps:
    """Wire the registry; without a bus nothing is published (the outbox keeps the messages)."""
    engine = create_engine(settings.database_url)
    store = EventStore(engine, SCHEMA, subject_for=subject_for)
    relay = None
    if bus is not None:
        relay = OutboxRelay(SCHEMA, bus, database_url=settings.database_url)
        store.set_on_commit(relay.wake)
    projections: tuple[Projection, ...] = (RegistryProjection(SCHEMA),)
    return Deps(
        settings=settings,
        engine=engine,
        store=store,
        projections=projections,
        uow=unit_of_work_factory(store, projections),
        views=PostgresViews(engine, SCHEMA),
        clock=clock or SystemClock(),
        relay=relay,
        hardware=hardware or load_catalog(),
    )


async def migrate_schema(database_url: str) -> list[str]:
    return await migrate(database_url, SCHEMA, MIGRATIONS_DIR)


async def rebuild_projections(deps: Deps) -> int:
    """Replay the whole registry log into freshly emptied read tables; returns the number of events."""
    return await rebuild_from_log(deps.store, list(deps.projections))
