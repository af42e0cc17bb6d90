"""Inbound: the senders, which send deliveries handed over by the consumer or leased from PostgreSQL."""

from __future__ import annotations

import asyncio
import logging

from services.webhook_dispatcher.bootstrap import Deps
from services.webhook_dispatcher.handlers import deliver_next, send
from services.webhook_dispatcher.ports import ClaimedDelivery

log = logging.getLogger(__name__)

# Never spin: a delivery that is due but briefly locked by another sender's claim is looked at again after this.
MIN_WAIT_SECONDS = 0.005


async def run_senders(deps: Deps, stop: asyncio.Event) -> None:
    """Several senders share the queue through leases taken with `FOR UPDATE SKIP LOCKED`.

    The senders may be here and in other processes.
    """
    due = asyncio.Event()
    senders = [_sender(deps, stop, due, looks=index == 0) for index in range(deps.settings.webhook_senders)]
    leftovers = await asyncio.gather(*senders)
    await _release_unsent(deps, [delivery for delivery in leftovers if delivery is not None])


async def _sender(deps: Deps, stop: asyncio.Event, due: asyncio.Event, *, looks: bool) -> ClaimedDelivery | None:
    """Send until `stop`; returns a delivery it was handed but did not get to send.

    Only one sender (`looks`) polls PostgreSQL while there is nothing to do: idle senders cost one query per
    poll interval in all, not one each. When it finds due work it sets `due`, and the others join in until the
    queue is empty again.
    """
    poll = deps.settings.webhook_poll_seconds
    handed: ClaimedDelivery | None = None
    while not stop.is_set():
        wait: float | None = None
        try:
            if handed is None and not deps.handoff.empty():
                handed = deps.handoff.get_nowait()
            if handed is not None:
                delivery, handed = handed, None
                await send(deps.sender, delivery)
                continue
            if looks or due.is_set():
                if await deliver_next(deps.sender):
                    due.set()
                    continue
                due.clear()
            wait = await _until_next_due(deps, poll) if looks else None
        except Exception:  # noqa: BLE001 - a database hiccup must not end the sender
            log.exception("webhook sender failed; retrying")
            wait = poll
        handed = await _next_handed(deps, stop, due, wait)
    return handed


async def _next_handed(
    deps: Deps, stop: asyncio.Event, due: asyncio.Event, wait: float | None
) -> ClaimedDelivery | None:
    """A delivery handed over by the consumer; None when `wait` ran out, due work was found, or on stop."""
    handoff = asyncio.ensure_future(deps.handoff.get())
    woken = asyncio.ensure_future(due.wait())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({handoff, woken, stopped}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (woken, stopped):
            waiter.cancel()
        if not handoff.done():
            handoff.cancel()
    if handoff.done() and not handoff.cancelled():
        return handoff.result()
    return None


async def _until_next_due(deps: Deps, poll: float) -> float:
    """Sleep until the next throttled or retried delivery falls due, but never past one poll interval:
    deliveries queued by other processes are only seen by looking."""
    async with deps.delivery_unit_of_work() as uow:
        due = await uow.seconds_until_next_due()
    return poll if due is None else min(poll, max(due, MIN_WAIT_SECONDS))


async def _release_unsent(deps: Deps, unsent: list[ClaimedDelivery]) -> None:
    """On an orderly stop, leases handed over but never used go back at once instead of running out."""
    while not deps.handoff.empty():
        delivery = deps.handoff.get_nowait()
        if delivery is not None:
            unsent.append(delivery)
    if unsent:
        async with deps.delivery_unit_of_work() as uow:
            await uow.release(unsent)
