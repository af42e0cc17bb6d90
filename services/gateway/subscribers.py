"""Inbound NATS: the durable consumer that keeps the prediction read model up to date."""

from __future__ import annotations

import asyncio

from libs.bus.consumer import ReceivedMessage, Retry, run_batch_consumer
from libs.bus.subjects import PREDICTION_EVENTS, SCHEDULER_EVENTS
from libs.events import Envelope
from services.gateway.projection import CONSUMER, Outcome, PredictionProjection


async def consume_prediction_events(bus, projection: PredictionProjection, stop: asyncio.Event) -> None:  # type: ignore[no-untyped-def]
    async def on_batch(messages: list[ReceivedMessage]) -> list[Retry | None]:
        outcomes = await projection.apply_batch([Envelope.from_json(message.data) for message in messages])
        return [
            Retry("an earlier event of this prediction is still in flight") if outcome is Outcome.GAP else None
            for outcome in outcomes
        ]

    await run_batch_consumer(
        bus,
        stream=SCHEDULER_EVENTS.name,
        durable=CONSUMER,
        subject=PREDICTION_EVENTS,
        handler=on_batch,
        stop=stop,
    )
