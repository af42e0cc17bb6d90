"""Inbound: the durable `webhook_dispatcher-deliveries` consumer of prediction lifecycle events."""

from __future__ import annotations

import asyncio

from libs.bus.consumer import ReceivedMessage, Retry, run_consumer
from libs.bus.subjects import PREDICTION_EVENTS, SCHEDULER_EVENTS
from libs.events import Envelope
from services.webhook_dispatcher.bootstrap import Deps
from services.webhook_dispatcher.handlers import EventOutOfOrder, handle_prediction_event

DURABLE = "webhook_dispatcher-deliveries"


def retry_delay(deliveries: int) -> float:
    return min(0.1 * deliveries, 5.0)


async def consume_prediction_events(deps: Deps, stop: asyncio.Event, *, durable: str = DURABLE) -> None:
    async def on_prediction_event(message: ReceivedMessage) -> None:
        event = Envelope.from_json(message.data)
        try:
            queued = await handle_prediction_event(
                event,
                deps.prediction_unit_of_work,
                deps.settings.public_url,
                deps.settings.webhook_throttle_seconds,
            )
        except EventOutOfOrder as exc:
            raise Retry(f"waiting for the events before {exc}", retry_delay(message.num_delivered)) from exc
        if queued:
            deps.deliveries_queued.set()

    await run_consumer(
        deps.bus,
        stream=SCHEDULER_EVENTS.name,
        durable=durable,
        subject=PREDICTION_EVENTS,
        handler=on_prediction_event,
        stop=stop,
    )
