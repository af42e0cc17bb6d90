"""Folding lifecycle events into the prediction view, queuing webhooks, and sending them."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass

from libs.events import Envelope
from libs.predictions import apply_event, render_prediction
from services.webhook_dispatcher.domain.decisions import FINAL, plan_delivery
from services.webhook_dispatcher.domain.ordering import Placement, place, prediction_id_of
from services.webhook_dispatcher.domain.retries import RetryPolicy, decide
from services.webhook_dispatcher.domain.signing import signed_headers, webhook_id
from services.webhook_dispatcher.metrics import DeliveryMetrics
from services.webhook_dispatcher.ports import (
    AttemptRecord,
    ClaimedDelivery,
    DeliveryUnitOfWorkFactory,
    PredictionUnitOfWorkFactory,
    SecretStore,
    WebhookClient,
)

log = logging.getLogger(__name__)


class EventOutOfOrder(Exception):
    """An event arrived ahead of one it follows; it must come back after the gap is filled."""


@dataclass(frozen=True)
class Queued:
    """A delivery was queued; `claimed` when it was leased to this process to be sent right away."""

    claimed: ClaimedDelivery | None = None


async def handle_prediction_event(
    event: Envelope,
    unit_of_work: PredictionUnitOfWorkFactory,
    public_url: str,
    throttle_seconds: float = 0.5,
    lease_seconds: float = 0.0,
) -> Queued | None:
    """Apply `event` to the view and queue its webhook in one transaction; None when nothing was queued.

    The delivery is only queued here, never sent: a crash after commit loses nothing (a lease taken here
    runs out and another sender takes the delivery), and a redelivered event finds its tracking row and
    queues nothing twice.
    """
    prediction_id = prediction_id_of(event.stream_id, event.data)
    async with unit_of_work() as uow:
        stored = await uow.load_view(prediction_id)
        if stored is not None and not stored.view.get("webhook"):
            # Most predictions have no webhook: once that is known, their later events need no write at all.
            return None
        if not await uow.track(event.id):
            return None
        placement = place(event.type, event.stream_version, stored.stream_version if stored else None)
        if placement is Placement.GAP:
            raise EventOutOfOrder(f"{event.type} v{event.stream_version} of {prediction_id}")
        if placement is Placement.ALREADY_APPLIED:
            return None
        view = apply_event(stored.view if stored else None, event)
        await uow.save_view(prediction_id, event.stream_version, view)
        plan = plan_delivery(view, event.type, event.data)
        if plan is None:
            return None
        # Serialised once: these exact bytes are signed and sent on every attempt.
        body = json.dumps(render_prediction(view, public_url))
        account = str(view.get("account") or "")
        if plan.webhook_event == FINAL:
            claimed = await uow.add_final_delivery(prediction_id, account, plan.url, body, lease_seconds)
        elif plan.throttled:
            claimed = await uow.coalesce_progress(
                prediction_id, account, plan.webhook_event, plan.url, body, throttle_seconds, lease_seconds
            )
        else:
            claimed = await uow.add_delivery(prediction_id, account, plan.webhook_event, plan.url, body, lease_seconds)
        return Queued(claimed)


@dataclass(frozen=True)
class Sender:
    """What sending one delivery needs."""

    unit_of_work: DeliveryUnitOfWorkFactory
    client: WebhookClient
    secrets: SecretStore
    policy: RetryPolicy
    metrics: DeliveryMetrics
    lease_seconds: float


async def deliver_next(sender: Sender) -> bool:
    """Lease one due delivery, POST it signed, and record the attempt; False when none was due.

    The lease is committed before the POST, so no transaction stays open across the network and a sender
    that dies mid-POST only delays the delivery until its lease ends; whoever sends it next uses the same
    `webhook-id`, so receivers can drop the duplicate.
    """
    async with sender.unit_of_work() as uow:
        delivery = await uow.claim_next(sender.lease_seconds)
    if delivery is None:
        return False
    # Just claimed: the lease is whole, no renewal needed before the POST.
    await send(sender, delivery, renew=False)
    return True


async def send(sender: Sender, delivery: ClaimedDelivery, *, renew: bool = True) -> bool:
    """POST a leased delivery, signed with its account's secret, and record the attempt.

    The lease is renewed right before the POST: a delivery that waited in memory (handed over by the
    consumer while every sender was busy) may have outlived its lease and been taken by another sender.
    Only a sender whose token still holds posts, and then with a full lease ahead, which outlasts the
    client's whole-request timeout; so two senders never post the same delivery at once. False when the
    delivery was no longer ours and nothing was sent. `renew=False` is for a delivery claimed a moment ago.
    """
    if renew:
        async with sender.unit_of_work() as uow:
            renewed = await uow.renew(delivery, sender.lease_seconds)
        if renewed is None:
            log.info("delivery %s was taken over by another sender; not sending it here", delivery.id)
            return False
        delivery = renewed
    secret = await sender.secrets.get_or_create(delivery.account)
    body = delivery.body.encode()
    headers = signed_headers(secret, webhook_id(delivery.id), int(time.time()), body)
    log.debug("posting delivery %s, attempt %d", delivery.id, delivery.attempts + 1)
    result = await sender.client.post(delivery.url, body, headers)
    attempt = delivery.attempts + 1
    elapsed = delivery.elapsed_seconds + result.latency_ms / 1000
    outcome, retry_in = decide(
        delivery.webhook_event, attempt, elapsed, result.status_code, result.error, sender.policy,
        refused=result.refused,
    )
    record = AttemptRecord(attempt=attempt, result=result, outcome=outcome.value, retry_in=retry_in)
    await _record(sender, delivery, record)
    sender.metrics.attempt(delivery.webhook_event, result.status_code, outcome.value, result.latency_ms)
    return True


# Backoff between tries to record an attempt while the database is unreachable.
RECORD_RETRY_FIRST_SECONDS = 0.05
RECORD_RETRY_MAX_SECONDS = 1.0


async def _record(sender: Sender, delivery: ClaimedDelivery, record: AttemptRecord) -> None:
    """Record an attempt whose POST has been made, however long the database takes to come back.

    Dropping it would leave the delivery leased with nothing recorded: once the lease ran out it would be
    POSTed again (same `webhook-id`) and the log would show one attempt for two POSTs. A PostgreSQL restart
    does exactly that, since each pooled connection fails its next transaction. Recording is idempotent
    (keyed by lease and attempt), so a commit whose answer was lost is not recorded twice when retried.
    """
    delay = RECORD_RETRY_FIRST_SECONDS
    while True:
        try:
            async with sender.unit_of_work() as uow:
                settled = await uow.record_attempt(delivery, record)
            break
        except Exception:  # noqa: BLE001 - the database is down or a pooled connection broke; try again
            log.warning(
                "could not record attempt %d of delivery %s; retrying in %.2fs", record.attempt, delivery.id, delay,
                exc_info=True,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECORD_RETRY_MAX_SECONDS)
    if not settled:
        log.warning("attempt %d of delivery %s was recorded after its lease was taken over", record.attempt,
                    delivery.id)
