"""Inbound: the durable `billing-usage` consumer of prediction lifecycle events."""

from __future__ import annotations

import asyncio

from libs.bus.consumer import ReceivedMessage, Retry, run_consumer
from libs.bus.subjects import BILLING_USAGE_DURABLE, PREDICTION_EVENTS, SCHEDULER_EVENTS
from libs.events import Envelope
from services.billing.bootstrap import Deps
from services.billing.handlers import PredictionNotYetKnown, handle_prediction_event

DURABLE = BILLING_USAGE_DURABLE


def retry_delay(deliveries: int) -> float:
    return min(0.2 * deliveries, 5.0)


async def consume_prediction_events(deps: Deps, stop: asyncio.Event, *, durable: str = DURABLE) -> None:
    async def on_prediction_event(message: ReceivedMessage) -> None:
        try:
            await handle_prediction_event(Envelope.from_json(message.data), deps.unit_of_work)
        except PredictionNotYetKnown as exc:
            raise Retry(f"prediction {exc} not created yet", retry_delay(message.num_delivered)) from exc

    await run_consumer(
        deps.bus,
        stream=SCHEDULER_EVENTS.name,
        durable=durable,
        subject=PREDICTION_EVENTS,
        handler=on_prediction_event,
        stop=stop,
    )
