"""Holding `Prefer: wait` requests until their prediction ends, without polling the database.

Every gateway instance watches the lifecycle subject on core NATS (the durable consumer that maintains the
read model may be running in another instance); a watched prediction's events are applied to the read model
right away, then its waiters are woken. It also watches the runners' completion reports: a prediction that
ends while still `starting` in the read model can be answered from its report as soon as the report is
stored (`libs.predictions.view_after_completion`), before the scheduler has recorded the end.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.bus.nats import Bus, settle
from libs.bus.subjects import PREDICTION_EVENTS, runner_prediction_report_subject
from libs.events import Envelope
from libs.predictions import (
    TERMINAL_EVENT_TYPES,
    TERMINAL_STATUSES,
    RunnerPredictionCompleted,
    parse_runner_report,
    restore_event,
)
from services.gateway.projection import PredictionProjection

log = logging.getLogger(__name__)



class Waiter:
    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.saw_terminal = False
        # The view as of the latest event this gateway applied, sparing a read of the read model.
        self.latest_view: dict[str, Any] | None = None
        # The runner's completion report, stored in JetStream (the scheduler records the end from it).
        self.completion: RunnerPredictionCompleted | None = None


class PredictionWaiters:
    def __init__(self, bus: Bus, projection: PredictionProjection, recent_size: int = 2048) -> None:
        self._bus = bus
        self._projection = projection
        self._waiters: dict[str, set[Waiter]] = {}
        # Predictions that ended before anyone started waiting (a fast model can beat the create response).
        self._recent_terminal: OrderedDict[str, Envelope] = OrderedDict()
        self._recent_size = recent_size
        # Completion reports of predictions that ended before anyone started waiting.
        self._recent_completions: OrderedDict[str, RunnerPredictionCompleted] = OrderedDict()
        self._subscriptions: list[Subscription] = []

    async def start(self) -> None:
        self._subscriptions = [
            await self._bus.nc.subscribe(PREDICTION_EVENTS, cb=self._on_message),
            await self._bus.nc.subscribe(runner_prediction_report_subject("completed"), cb=self._on_completion),
        ]
        await settle(self._bus.nc)

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.unsubscribe()
        self._subscriptions = []

    def register(self, prediction_id: str) -> Waiter:
        waiter = Waiter()
        self._waiters.setdefault(prediction_id, set()).add(waiter)
        if prediction_id in self._recent_terminal:
            waiter.saw_terminal = True
            waiter.changed.set()
        if prediction_id in self._recent_completions:
            waiter.completion = self._recent_completions[prediction_id]
            waiter.changed.set()
        return waiter

    def unregister(self, prediction_id: str, waiter: Waiter) -> None:
        waiters = self._waiters.get(prediction_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[prediction_id]

    async def _on_completion(self, msg: Msg) -> None:
        try:
            report = parse_runner_report(await restore_event(self._bus.js, Envelope.from_json(msg.data)))
        except Exception:  # noqa: BLE001 - a malformed report must not stop the subscription
            log.warning("ignoring malformed completion report on %s", msg.subject)
            return
        if not isinstance(report, RunnerPredictionCompleted):
            return
        self._recent_completions[report.prediction_id] = report
        if len(self._recent_completions) > self._recent_size:
            self._recent_completions.popitem(last=False)
        for waiter in list(self._waiters.get(report.prediction_id, ())):
            waiter.completion = report
            waiter.changed.set()

    async def _on_message(self, msg: Msg) -> None:
        # `scheduler.events.prediction.<kind>[.<tag>]`: waiters only care about the end, and every gateway sees
        # every event, so the others are dropped before their JSON is parsed.
        if msg.subject.split(".", 4)[3] not in TERMINAL_STATUSES:
            return
        try:
            event = Envelope.from_json(msg.data)
            prediction_id = event.data["id"]
        except Exception:  # noqa: BLE001 - a malformed message must not stop the subscription
            log.warning("ignoring malformed lifecycle message on %s", msg.subject)
            return
        if event.type not in TERMINAL_EVENT_TYPES:
            return  # waiters only care about the end; the durable consumer records the rest
        self._recent_terminal[prediction_id] = event
        if len(self._recent_terminal) > self._recent_size:
            self._recent_terminal.popitem(last=False)
        waiters = self._waiters.get(prediction_id)
        if not waiters:
            return
        view = None
        try:
            # Applied before answering, so a GET right after the answer already shows the result.
            _, view = await self._projection.apply(event)
        except Exception:  # noqa: BLE001 - the durable consumer applies it too; waiters can ask the scheduler
            log.warning("could not apply %s for waiters", event.type, exc_info=True)
        for waiter in list(waiters):
            waiter.saw_terminal = True
            if view is not None:
                waiter.latest_view = view
            waiter.changed.set()
