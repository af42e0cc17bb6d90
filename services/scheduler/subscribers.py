"""Inbound NATS: runner reports become prediction events."""

from __future__ import annotations

import asyncio

from libs.bus.consumer import ReceivedMessage, run_consumer
from libs.bus.subjects import RUNNER_EVENTS, RUNNER_PREDICTION_EVENTS
from libs.events import Envelope
from services.scheduler import handlers
from services.scheduler.bootstrap import Deps


async def consume_runner_events(deps: Deps, stop: asyncio.Event) -> None:
    async def on_message(message: ReceivedMessage) -> None:
        kind = message.subject.rsplit(".", 1)[-1]
        await handlers.record_runner_event(Envelope.from_json(message.data), kind, store=deps.store)

    await run_consumer(
        deps.bus,
        stream=RUNNER_EVENTS.name,
        durable=handlers.RUNNER_EVENTS_CONSUMER,
        subject=RUNNER_PREDICTION_EVENTS,
        handler=on_message,
        stop=stop,
    )
