"""Inbound NATS: runner reports become prediction events; sweeps cancel overdue predictions and remove old data."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.js.errors import NotFoundError
from sqlalchemy import text

from libs.bus.consumer import ReceivedMessage, Retry, run_batch_consumer, run_consumer
from libs.bus.nats import Bus
from libs.bus.subjects import RUNNER_EVENTS, RUNNER_INSTANCE_EVENTS, RUNNER_PREDICTION_EVENTS
from libs.events import Envelope
from services.scheduler import control, handlers
from services.scheduler.adapters.prediction_data import NatsPredictionData
from services.scheduler.bootstrap import Deps, fair_share_policy

log = logging.getLogger(__name__)


async def consume_runner_events(deps: Deps, stop: asyncio.Event) -> None:
    """Runner reports, in batches of whatever has arrived: a burst of them is one read and one write."""
    async def on_messages(messages: list[ReceivedMessage]) -> list[Retry | None]:
        return await handlers.record_runner_events(
            [(Envelope.from_json(message.data), message.subject.rsplit(".", 1)[-1]) for message in messages],
            store=deps.store, js=deps.bus.js, retention_seconds=deps.settings.prediction_retention_seconds,
            runners=deps.runners, fair_share_policy=fair_share_policy(deps.settings),
        )

    async def on_give_up(message: ReceivedMessage, reason: BaseException) -> None:
        kind = message.subject.rsplit(".", 1)[-1]
        detail = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
        await handlers.fail_unrecorded_report(
            Envelope.from_json(message.data), kind, detail, store=deps.store, clock=deps.clock, js=deps.bus.js,
            retention_seconds=deps.settings.prediction_retention_seconds,
        )

    await run_batch_consumer(
        deps.bus,
        stream=RUNNER_EVENTS.name,
        durable=handlers.RUNNER_EVENTS_CONSUMER,
        subject=RUNNER_PREDICTION_EVENTS,
        handler=on_messages,
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
            removed = await handlers.remove_due_data(store=deps.store, clock=deps.clock, data=data, js=deps.bus.js)
            if removed:
                log.info("removed the data of %d prediction(s) at the end of their retention", len(removed))
            await forget_recorded_reports(deps.bus)
        except Exception:  # noqa: BLE001 - the sweep must outlive hiccups; the rows stay due
            log.warning("data removal sweep failed; retrying", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), deps.settings.retention_sweep_interval)


async def forget_recorded_reports(bus: Bus) -> None:
    """Runner reports (outputs and logs among them) are kept in RUNNER_EVENTS only until recorded: what every
    report consumer has acknowledged goes, so they leave no copy behind the retention of a prediction's data."""
    for durable, subjects in ((handlers.RUNNER_EVENTS_CONSUMER, RUNNER_PREDICTION_EVENTS),
                              (control.INSTANCE_EVENTS_CONSUMER, RUNNER_INSTANCE_EVENTS)):
        try:
            floor = (await bus.js.consumer_info(RUNNER_EVENTS.name, durable)).ack_floor
        except NotFoundError:
            continue
        if floor is not None and floor.stream_seq:
            await bus.js.purge_stream(RUNNER_EVENTS.name, subject=subjects, seq=floor.stream_seq + 1)


async def consume_instance_reports(deps: Deps, stop: asyncio.Event) -> None:
    """Runner nodes' reports on instances (booting phases, ready, stopped, failed) become instance events."""
    async def on_message(message: ReceivedMessage) -> None:
        await control.record_instance_report(Envelope.from_json(message.data), store=deps.store, clock=deps.clock)

    await run_consumer(
        deps.bus,
        stream=RUNNER_EVENTS.name,
        durable=control.INSTANCE_EVENTS_CONSUMER,
        subject=RUNNER_INSTANCE_EVENTS,
        handler=on_message,
        stop=stop,
    )


# One scheduler process places and commands instances at a time: the holder of this advisory lock.
CONTROL_LOCK = 0x5C4ED01E


async def run_control_loop(deps: Deps, stop: asyncio.Event) -> None:
    """Hold the control lock (waiting for it while another scheduler holds it) and tick the controller."""
    assert deps.controller is not None
    while not stop.is_set():
        try:
            async with deps.engine.connect() as conn:
                held = (await conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": CONTROL_LOCK})).scalar()
                await conn.commit()
                if not held:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 2.0)
                    continue
                log.info("this scheduler now places and scales instances")
                try:
                    while not stop.is_set():
                        # The lock lives as long as this connection: check it is still there.
                        await asyncio.wait_for(conn.execute(text("SELECT 1")), 10)
                        await conn.commit()
                        began = time.monotonic()
                        tick = asyncio.create_task(deps.controller.tick())
                        done, _ = await asyncio.wait({tick}, timeout=deps.settings.control_tick_timeout)
                        if not done:
                            # Abandoned, not awaited: a tick stuck where cancelling does not reach (a query
                            # waiting on a lock) must not stop the next ones.
                            tick.cancel()
                            log.warning("control tick still running after %.0f s; abandoned",
                                        deps.settings.control_tick_timeout)
                        elif tick.exception() is not None:
                            log.warning("control tick failed; retrying", exc_info=tick.exception())
                        if time.monotonic() - began > 2.0:
                            log.warning("control tick took %.1f s", time.monotonic() - began)
                        await _sleep_or_wake(stop, deps.controller.wakeup, deps.settings.control_interval)
                finally:
                    with contextlib.suppress(Exception):
                        await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": CONTROL_LOCK})
                        await conn.commit()
        except Exception:  # noqa: BLE001 - lost connection: the lock went with it; try again
            log.warning("control loop lost its database connection; retrying", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)


async def _sleep_or_wake(stop: asyncio.Event, wakeup: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, less if the scheduler is stopping or a prediction was just created here."""
    waiters = [asyncio.create_task(stop.wait()), asyncio.create_task(wakeup.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        wakeup.clear()
