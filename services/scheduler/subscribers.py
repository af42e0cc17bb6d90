"""Inbound NATS: runner reports become prediction events; sweeps cancel overdue predictions and remove old data."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from libs.bus.consumer import ReceivedMessage, run_consumer
from libs.bus.subjects import RUNNER_EVENTS, RUNNER_PREDICTION_EVENTS
from libs.events import Envelope
from services.scheduler import handlers
from services.scheduler.adapters.prediction_data import NatsPredictionData
from services.scheduler.bootstrap import Deps

log = logging.getLogger(__name__)


async def consume_runner_events(deps: Deps, stop: asyncio.Event) -> None:
    async def on_message(message: ReceivedMessage) -> None:
        kind = message.subject.rsplit(".", 1)[-1]
        await handlers.record_runner_event(
            Envelope.from_json(message.data), kind, store=deps.store, js=deps.bus.js,
            retention_seconds=deps.settings.prediction_retention_seconds,
        )

    async def on_give_up(message: ReceivedMessage, reason: BaseException) -> None:
        kind = message.subject.rsplit(".", 1)[-1]
        detail = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
        await handlers.fail_unrecorded_report(
            Envelope.from_json(message.data), kind, detail, store=deps.store, clock=deps.clock, js=deps.bus.js,
            retention_seconds=deps.settings.prediction_retention_seconds,
        )

    await run_consumer(
        deps.bus,
        stream=RUNNER_EVENTS.name,
        durable=handlers.RUNNER_EVENTS_CONSUMER,
        subject=RUNNER_PREDICTION_EVENTS,
        handler=on_message,
        stop=stop,
        on_give_up=on_give_up,
    )


async def sweep_deadlines(deps: Deps, stop: asyncio.Event) -> None:
    """Cancel predictions whose Cancel-After deadline passed, whether or not a runner ever took them."""
    while not stop.is_set():
        try:
            canceled = await handlers.cancel_due_predictions(
                store=deps.store, clock=deps.clock, runners=deps.runners, js=deps.bus.js,
                retention_seconds=deps.settings.prediction_retention_seconds,
            )
            if canceled:
                log.info("canceled %d prediction(s) at their deadline", len(canceled))
        except Exception:  # noqa: BLE001 - the sweep must outlive database hiccups; the rows stay due
            log.warning("deadline sweep failed; retrying", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), deps.settings.deadline_sweep_interval)


async def sweep_data_removals(deps: Deps, stop: asyncio.Event) -> None:
    """Remove the input, output, logs and files of API predictions whose retention period is over."""
    data = NatsPredictionData(deps.bus, deps.registry, deps.settings.public_url)
    while not stop.is_set():
        try:
            removed = await handlers.remove_due_data(store=deps.store, clock=deps.clock, data=data)
            if removed:
                log.info("removed the data of %d prediction(s) at the end of their retention", len(removed))
        except Exception:  # noqa: BLE001 - the sweep must outlive hiccups; the rows stay due
            log.warning("data removal sweep failed; retrying", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), deps.settings.retention_sweep_interval)
