"""Inbound: the senders, which take queued deliveries from PostgreSQL and POST them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.webhook_dispatcher.bootstrap import Deps
from services.webhook_dispatcher.handlers import deliver_next

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25


async def run_senders(deps: Deps, stop: asyncio.Event, *, poll: float = POLL_SECONDS) -> None:
    """Several senders share the queue through `FOR UPDATE SKIP LOCKED`, in this process and in others."""
    await asyncio.gather(*(_sender(deps, stop, poll) for _ in range(max(deps.settings.webhook_senders, 1))))


async def _sender(deps: Deps, stop: asyncio.Event, poll: float) -> None:
    while not stop.is_set():
        try:
            sent = await deliver_next(deps.delivery_unit_of_work, deps.client)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the sender
            log.exception("webhook sender failed; retrying")
            sent = False
        if not sent:
            deps.deliveries_queued.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(deps.deliveries_queued.wait(), timeout=poll)
