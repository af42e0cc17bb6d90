"""Inbound: the durable `billing-usage` consumer of prediction lifecycle events."""

from __future__ import annotations

import asyncio

from libs.bus.consumer import ReceivedMessage, Retry, run_batch_consumer
from libs.bus.subjects import BILLING_USAGE_DURABLE, SCHEDULER_EVENTS, TERMINAL_PREDICTION_EVENTS
from libs.events import Envelope
from services.billing.bootstrap import Deps
from services.billing.handlers import record_usage_batch

DURABLE = BILLING_USAGE_DURABLE


def retry_delay(deliveries: int) -> float:
    return min(0.2 * deliveries, 5.0)


async def consume_prediction_events(deps: Deps, stop: asyncio.Event, *, durable: str = DURABLE) -> None:
    async def on_ends(messages: list[ReceivedMessage]) -> list[Retry | None]:
        # Every end of a batch is recorded in one transaction.
        reasons = await record_usage_batch([Envelope.from_json(m.data) for m in messages], deps.unit_of_work)
        return [
            None if reason is None else Retry(reason, retry_delay(message.num_delivered))
            for message, reason in zip(messages, reasons, strict=True)
        ]

    await run_batch_consumer(
        deps.bus,
        stream=SCHEDULER_EVENTS.name,
        durable=durable,
        # Ends only: they carry account, model, version and hardware (older ones are completed from `created`).
        subject=TERMINAL_PREDICTION_EVENTS,
        handler=on_ends,
        stop=stop,
    )
