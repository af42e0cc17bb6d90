"""Composition root of the gateway."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.bus.nats import Bus, connect
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.rpc import create_channel
from services.gateway.adapters.packages import PackageTexts
from services.gateway.adapters.registry_grpc import GrpcRegistryClient
from services.gateway.adapters.scheduler_grpc import GrpcSchedulerClient
from services.gateway.auth import rate_limiter
from services.gateway.projection import SCHEMA, PredictionProjection
from services.gateway.ratelimit import RateLimiter
from services.gateway.settings import GatewaySettings
from services.gateway.sharing import PredictionPages
from services.gateway.waiters import PredictionWaiters

MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Deps:
    settings: GatewaySettings
    engine: AsyncEngine
    bus: Bus
    store: EventStore
    projection: PredictionProjection
    waiters: PredictionWaiters
    registry: GrpcRegistryClient
    scheduler: GrpcSchedulerClient
    rate_limiter: RateLimiter
    packages: PackageTexts
    pages: PredictionPages


async def bootstrap(settings: GatewaySettings) -> Deps:
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    engine = create_engine(settings.database_url)
    bus = await connect(settings.nats_url, name=f"gateway-{settings.instance_id}")
    await bus.ensure_streams()
    store = EventStore(engine, SCHEMA)
    projection = PredictionProjection(store)
    registry = GrpcRegistryClient(create_channel(settings.registry_addr), settings.auth_cache_seconds)
    await registry.watch_auth_changes(bus.nc)
    return Deps(
        settings=settings,
        engine=engine,
        bus=bus,
        store=store,
        projection=projection,
        waiters=PredictionWaiters(bus, projection),
        registry=registry,
        scheduler=GrpcSchedulerClient(create_channel(settings.scheduler_addr)),
        rate_limiter=rate_limiter(settings),
        packages=PackageTexts(bus.js),
        pages=PredictionPages(store),
    )
