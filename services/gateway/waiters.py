"""Holding `Prefer: wait` requests until their prediction ends, without polling the database.

Every gateway instance watches the lifecycle subject on core NATS (the durable consumer that maintains the
read model may be running in another instance); a watched prediction's events are applied to the read model
right away, then its waiters are woken.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from libs.bus.nats import Bus
from libs.bus.subjects import PREDICTION_EVENTS
from libs.events import Envelope
from libs.predictions import TERMINAL_EVENT_TYPES, TERMINAL_STATUSES
from services.gateway.projection import PredictionProjection

log = logging.getLogger(__name__)



class Waiter:
    def __init__(self) -> None:
        self.changed = asyncio.Event()
        self.saw_terminal = False
        # The view as of the latest event this gateway applied, sparing a read of the read model.
        self.latest_view: dict[str, Any] | None = None


class PredictionWaiters:
    def __init__(self, bus: Bus, projection: PredictionProjection, recent_size: int = 2048) -> None:
        self._bus = bus
        self._projection = projection
        self._waiters: dict[str, set[Waiter]] = {}
        # Predictions that ended before anyone started waiting (a fast model can beat the create response).
        self._recent_terminal: OrderedDict[str, Envelope] = OrderedDict()
        self._recent_size = recent_size
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._bus.nc.subscribe(PREDICTION_EVENTS, cb=self._on_message)

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.unsubscribe()

    def register(self, prediction_id: str) -> Waiter:
        waiter = Waiter()
        self._waiters.setdefault(prediction_id, set()).add(waiter)
        if prediction_id in self._recent_terminal:
            waiter.saw_terminal = True
            waiter.changed.set()
        return waiter

    def unregister(self, prediction_id: str, waiter: Waiter) -> None:
        waiters = self._waiters.get(prediction_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del self._waiters[prediction_id]

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
