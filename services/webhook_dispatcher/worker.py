"""Inbound: the senders, which lease queued deliveries from PostgreSQL and POST them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from services.webhook_dispatcher.bootstrap import Deps
from services.webhook_dispatcher.handlers import deliver_next

log = logging.getLogger(__name__)

# Never spin: a delivery that is due but briefly locked by another sender's claim is looked at again after this.
MIN_WAIT_SECONDS = 0.005


async def run_senders(deps: Deps, stop: asyncio.Event) -> None:
    """Several senders share the queue through leases taken with `FOR UPDATE SKIP LOCKED`, here and in other processes."""
    await asyncio.gather(*(_sender(deps, stop) for _ in range(deps.settings.webhook_senders)))


async def _sender(deps: Deps, stop: asyncio.Event) -> None:
    poll = deps.settings.webhook_poll_seconds
    while not stop.is_set():
        # Cleared before looking, so a delivery queued while we look still wakes us.
        deps.deliveries_queued.clear()
        try:
            if await deliver_next(deps.sender):
                continue
            wait = await _until_next_due(deps, poll)
        except Exception:  # noqa: BLE001 - a database hiccup must not end the sender
            log.exception("webhook sender failed; retrying")
            wait = poll
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(deps.deliveries_queued.wait(), timeout=wait)


async def _until_next_due(deps: Deps, poll: float) -> float:
    """Sleep until the next throttled or retried delivery falls due, but never past one poll interval:
    deliveries queued by other processes are only seen by looking."""
    async with deps.delivery_unit_of_work() as uow:
        due = await uow.seconds_until_next_due()
    return poll if due is None else min(poll, max(due, MIN_WAIT_SECONDS))
