"""Inbound: the durable `webhook_dispatcher-deliveries` consumer of prediction lifecycle events."""

from __future__ import annotations

import asyncio
import contextlib

from libs.bus.consumer import ReceivedMessage, Retry, run_consumer
from libs.bus.subjects import SCHEDULER_EVENTS, WEBHOOK_DELIVERIES_DURABLE, WEBHOOK_PREDICTION_EVENTS
from libs.events import Envelope
from libs.predictions import restore_event
from services.webhook_dispatcher.bootstrap import Deps
from services.webhook_dispatcher.handlers import EventOutOfOrder, handle_prediction_event

DURABLE = WEBHOOK_DELIVERIES_DURABLE


def retry_delay(deliveries: int) -> float:
    # The missing event is usually being applied right now (by another instance): look again soon.
    return min(0.02 * 2 ** (deliveries - 1), 5.0)


async def consume_prediction_events(deps: Deps, stop: asyncio.Event, *, durable: str = DURABLE) -> None:
    async def on_prediction_event(message: ReceivedMessage) -> None:
        # A large output travels by reference (libs.blobs.spill); the webhook body carries it whole.
        event = await restore_event(deps.bus.js, Envelope.from_json(message.data))
        # This consumer is the only producer of the handoff queue, so room seen now is still there after the commit.
        lease_seconds = 0.0 if deps.handoff.full() else deps.settings.lease_seconds
        try:
            queued = await handle_prediction_event(
                event,
                deps.prediction_unit_of_work,
                deps.settings.public_url,
                deps.settings.webhook_throttle_seconds,
                lease_seconds,
            )
        except EventOutOfOrder as exc:
            raise Retry(f"waiting for the events before {exc}", retry_delay(message.num_delivered)) from exc
        if queued is not None:
            with contextlib.suppress(asyncio.QueueFull):
                deps.handoff.put_nowait(queued.claimed)

    await run_consumer(
        deps.bus,
        stream=SCHEDULER_EVENTS.name,
        durable=durable,
        # Only the events of predictions with a webhook: the others never reach this service.
        subject=WEBHOOK_PREDICTION_EVENTS,
        handler=on_prediction_event,
        stop=stop,
    )
