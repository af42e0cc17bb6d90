"""Composition root of the gateway."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from faststream.nats import NatsBroker
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.bus.broker import create_broker, start_broker
from libs.bus.nats import Bus, connect
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.hardware import HardwareCatalog, load_catalog
from libs.modelpkg.schema import inspection_sandbox
from libs.rpc import create_channel
from services.gateway.adapters.packages import PackageTexts
from services.gateway.adapters.registry_grpc import REGISTRY_FAILOVER, GrpcRegistryClient
from services.gateway.adapters.scheduler_grpc import GrpcSchedulerClient
from services.gateway.auth import rate_limiter
from services.gateway.file_links import FileLinkSigner
from services.gateway.projection import SCHEMA, PredictionProjection
from services.gateway.ratelimit import RateLimiter
from services.gateway.settings import GatewaySettings
from services.gateway.sharing import PredictionPages
from services.gateway.waiters import PredictionWaiters

MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    settings: GatewaySettings
    engine: AsyncEngine
    bus: Bus
    # FastStream's broker, on a connection of its own: the registry's token and membership events.
    broker: NatsBroker
    store: EventStore
    projection: PredictionProjection
    waiters: PredictionWaiters
    registry: GrpcRegistryClient
    scheduler: GrpcSchedulerClient
    rate_limiter: RateLimiter
    packages: PackageTexts
    # The SKUs `GET /v1/hardware` lists and models and deployments may ask for.
    hardware: HardwareCatalog
    file_links: FileLinkSigner
    pages: PredictionPages


async def bootstrap(settings: GatewaySettings) -> Deps:
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    engine = create_engine(settings.database_url)
    bus = await connect(settings.nats_url, name=f"gateway-{settings.instance_id}")
    await bus.ensure_streams()
    store = EventStore(engine, SCHEMA)
    projection = PredictionProjection(store, bus.js)
    registry = GrpcRegistryClient(
        create_channel(settings.registry_addr, options=REGISTRY_FAILOVER), settings.auth_cache_seconds
    )
    broker = create_broker(settings.nats_url, name=f"gateway-{settings.instance_id}-auth")
    registry.watch_auth_changes(broker)
    await start_broker(broker)
    sandbox = inspection_sandbox()  # pushes import user code: say at start-up whether that can be done safely
    description = await asyncio.to_thread(sandbox.describe)
    log.log(logging.INFO if sandbox.enabled and sandbox.check() is None else logging.ERROR,
            "push inspection: %s", description)
    return Deps(
        settings=settings,
        engine=engine,
        bus=bus,
        broker=broker,
        store=store,
        projection=projection,
        waiters=PredictionWaiters(bus, projection),
        registry=registry,
        scheduler=GrpcSchedulerClient(create_channel(settings.scheduler_addr)),
        rate_limiter=rate_limiter(settings),
        packages=PackageTexts(bus.js),
        hardware=load_catalog(),
        file_links=FileLinkSigner(engine, SCHEMA, settings.files_signing_secret),
        pages=PredictionPages(store),
    )
