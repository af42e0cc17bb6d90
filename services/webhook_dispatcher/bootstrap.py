"""Composition root of the webhook dispatcher."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from libs.bus.nats import Bus, connect
from libs.bus.relay import OutboxRelay
from libs.bus.subjects import event_subject
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.events import Envelope
from libs.eventstore import EventStore
from services.webhook_dispatcher.adapters.http import HttpxWebhookClient
from services.webhook_dispatcher.adapters.postgres import (
    DELIVERY_ATTEMPTED,
    SCHEMA,
    PostgresSecretStore,
    delivery_unit_of_work_factory,
    prediction_unit_of_work_factory,
)
from services.webhook_dispatcher.adapters.queries import AttemptQueries
from services.webhook_dispatcher.domain.destinations import parse_networks
from services.webhook_dispatcher.domain.retries import RetryPolicy
from services.webhook_dispatcher.handlers import Sender
from services.webhook_dispatcher.metrics import DeliveryMetrics
from services.webhook_dispatcher.ports import (
    ClaimedDelivery,
    DeliveryUnitOfWorkFactory,
    PredictionUnitOfWorkFactory,
    SecretStore,
    WebhookClient,
)
from services.webhook_dispatcher.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
HANDOFF_SIZE = 256


def subject_for(event: Envelope) -> str | None:
    # `webhook.secret_created` carries the key: it stays in this service's log and is never published.
    if event.type == DELIVERY_ATTEMPTED:
        return event_subject("webhook_dispatcher", "delivery_attempted")
    return None


@dataclass(frozen=True)
class Deps:
    settings: Settings
    engine: AsyncEngine
    store: EventStore
    bus: Bus
    relay: OutboxRelay
    client: WebhookClient
    secrets: SecretStore
    queries: AttemptQueries
    prediction_unit_of_work: PredictionUnitOfWorkFactory
    delivery_unit_of_work: DeliveryUnitOfWorkFactory
    sender: Sender
    # From the event consumer to this process's senders: deliveries leased when they were queued (sent with
    # no claim round trip), or None to have a sender look at the queue now rather than at its next poll.
    handoff: asyncio.Queue[ClaimedDelivery | None] = field(default_factory=lambda: asyncio.Queue(HANDOFF_SIZE))

    async def close(self) -> None:
        aclose = getattr(self.client, "aclose", None)
        if aclose is not None:
            await aclose()
        await self.bus.close()
        await self.store.close()
        await self.engine.dispose()


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        window_seconds=settings.webhook_retry_window_seconds,
        base_seconds=settings.webhook_retry_base_seconds,
        max_interval_seconds=settings.webhook_retry_max_interval_seconds,
    )


async def bootstrap(
    settings: Settings,
    *,
    bus: Bus | None = None,
    client: WebhookClient | None = None,
    metrics: DeliveryMetrics | None = None,
) -> Deps:
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    if bus is None:
        bus = await connect(settings.nats_url, name=f"webhook_dispatcher{settings.instance_id}")
    await bus.ensure_streams()
    engine = create_engine(settings.database_url)
    relay = OutboxRelay(SCHEMA, bus, database_url=settings.database_url)
    store = EventStore(engine, SCHEMA, subject_for=subject_for, on_commit=relay.wake)
    client = client or HttpxWebhookClient(
        timeout=settings.webhook_timeout, allowed=parse_networks(settings.webhook_allowed_networks)
    )
    secrets = PostgresSecretStore(store)
    delivery_unit_of_work = delivery_unit_of_work_factory(store)
    return Deps(
        settings=settings,
        engine=engine,
        store=store,
        bus=bus,
        relay=relay,
        client=client,
        secrets=secrets,
        queries=AttemptQueries(engine),
        prediction_unit_of_work=prediction_unit_of_work_factory(store),
        delivery_unit_of_work=delivery_unit_of_work,
        sender=Sender(
            unit_of_work=delivery_unit_of_work,
            client=client,
            secrets=secrets,
            policy=retry_policy(settings),
            metrics=metrics or DeliveryMetrics(),
            lease_seconds=settings.lease_seconds,
        ),
    )


def offline_store(settings: Settings) -> EventStore:
    """The event store alone, for `rebuild-projections` without NATS."""
    return EventStore(create_engine(settings.database_url), SCHEMA)
