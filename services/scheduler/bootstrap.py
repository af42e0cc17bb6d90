"""Composition root of the scheduler."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.bus.nats import Bus, connect
from libs.bus.relay import OutboxRelay
from libs.bus.subjects import event_subject
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.hardware import HardwareCatalog, load_catalog
from libs.rpc import create_channel
from libs.sealing import load_public_key
from services.scheduler.adapters.clock import SystemClock
from services.scheduler.adapters.nodes_nats import NatsJobQueues, NatsNodeCommands, NatsNodeDirectory
from services.scheduler.adapters.registry_grpc import REGISTRY_FAILOVER, GrpcRegistryClient
from services.scheduler.adapters.runner_control import NatsRunnerControl
from services.scheduler.control import Controller, ControlSettings
from services.scheduler.domain.fair_share import FairSharePolicy, RecentLoads
from services.scheduler.domain.placement import Policy
from services.scheduler.ports import Clock, RegistryClient, RunnerControl
from services.scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

SCHEMA = "scheduler"
MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class Deps:
    settings: SchedulerSettings
    engine: AsyncEngine
    bus: Bus
    store: EventStore
    relay: OutboxRelay
    registry: RegistryClient
    runners: RunnerControl
    clock: Clock
    # Maps hardware SKUs to runner labels (job subjects).
    hardware: HardwareCatalog
    secrets_key: X25519PublicKey | None = None
    controller: Controller | None = None
    # Queue loads read by recent creates, which later creates decide fair share on (see `RecentLoads`).
    recent_loads: RecentLoads = field(default_factory=RecentLoads)


def fair_share_policy(settings: SchedulerSettings) -> FairSharePolicy:
    return FairSharePolicy(min_backlog=max(1, settings.fair_share_min_backlog),
                           backlog_per_running=max(0.0, settings.fair_share_backlog_per_running),
                           solo_backlog=max(1, settings.fair_share_solo_backlog))


def control_settings(settings: SchedulerSettings) -> ControlSettings:
    return ControlSettings(
        fair_share=fair_share_policy(settings),
        policy=Policy(
            scale_to_zero_after=settings.scale_to_zero_seconds,
            scale_in_after=min(settings.scale_in_seconds, settings.scale_to_zero_seconds),
            scale_out_after=settings.scale_out_after_seconds,
            max_instances_per_version=settings.max_instances_per_version,
            boot_timeout=settings.boot_timeout_seconds,
            boot_backoff_base=settings.boot_backoff_seconds,
            boot_backoff_max=settings.boot_backoff_max_seconds,
        ),
        no_hardware_timeout=settings.no_hardware_timeout_seconds,
        predict_timeout=settings.predict_timeout,
        node_lost_after=settings.node_lost_seconds,
        retention_seconds=settings.prediction_retention_seconds,
    )


async def bootstrap(settings: SchedulerSettings) -> Deps:
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    engine = create_engine(settings.database_url)
    bus = await connect(settings.nats_url, name=f"scheduler-{settings.instance_id}")
    await bus.ensure_streams()
    store = EventStore(
        engine, SCHEMA, subject_for=lambda event: event_subject(SCHEMA, event.type, event.metadata.subject_tag)
    )
    relay = OutboxRelay(SCHEMA, bus, database_url=settings.database_url)
    store.set_on_commit(relay.wake)
    store.set_hand_off(relay.hand_off)
    registry = GrpcRegistryClient(create_channel(settings.registry_addr, options=REGISTRY_FAILOVER))
    secrets_key = load_public_key(settings.secrets_public_key) if settings.secrets_public_key else None
    if secrets_key is None:
        log.warning("no COGWHEEL_SECRETS_PUBLIC_KEY: predictions with secret inputs will be refused")
    runners, clock, catalog = NatsRunnerControl(bus), SystemClock(), load_catalog()
    controller = Controller(
        store=store, clock=clock, nodes=NatsNodeDirectory(bus), commands=NatsNodeCommands(bus),
        queues=NatsJobQueues(bus, ack_wait=settings.ack_wait, max_deliver=settings.job_max_deliver),
        deployments=registry, runners=runners, catalog=catalog, settings=control_settings(settings),
        registry=registry,
    )
    return Deps(settings, engine, bus, store, relay, registry, runners, clock, catalog, secrets_key, controller)
