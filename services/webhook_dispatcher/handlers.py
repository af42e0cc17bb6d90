"""Folding lifecycle events into the prediction view, queuing webhooks, and sending them."""

from __future__ import annotations

import json

from libs.events import Envelope
from libs.predictions import apply_event, render_prediction
from services.webhook_dispatcher.domain.decisions import plan_delivery
from services.webhook_dispatcher.domain.ordering import Placement, place, prediction_id_of
from services.webhook_dispatcher.domain.retries import backoff, should_retry, succeeded
from services.webhook_dispatcher.ports import (
    DeliveryUnitOfWorkFactory,
    PredictionUnitOfWorkFactory,
    WebhookClient,
)


class EventOutOfOrder(Exception):
    """An event arrived ahead of one it follows; it must come back after the gap is filled."""


async def handle_prediction_event(
    event: Envelope, unit_of_work: PredictionUnitOfWorkFactory, public_url: str
) -> bool:
    """Apply `event` to the view and queue its webhook in one transaction; True when one was queued.

    The delivery is only queued here, never sent: a crash after commit loses nothing, and a
    redelivered event finds its tracking row and queues nothing twice.
    """
    prediction_id = prediction_id_of(event.stream_id, event.data)
    async with unit_of_work() as uow:
        stored = await uow.load_view(prediction_id)
        if stored is not None and not stored.view.get("webhook"):
            # Most predictions have no webhook: once that is known, their later events need no write at all.
            return False
        if not await uow.track(event.id):
            return False
        placement = place(event.type, event.stream_version, stored.stream_version if stored else None)
        if placement is Placement.GAP:
            raise EventOutOfOrder(f"{event.type} v{event.stream_version} of {prediction_id}")
        if placement is Placement.ALREADY_APPLIED:
            return False
        view = apply_event(stored.view if stored else None, event)
        await uow.save_view(prediction_id, event.stream_version, view)
        plan = plan_delivery(view, event.type)
        if plan is None:
            return False
        body = render_prediction(view, public_url)
        await uow.add_delivery(prediction_id, plan.webhook_event, plan.url, body)
        return True


async def deliver_next(unit_of_work: DeliveryUnitOfWorkFactory, client: WebhookClient) -> bool:
    """Send one due delivery and record the attempt; False when none was due."""
    async with unit_of_work() as uow:
        delivery = await uow.claim_next()
        if delivery is None:
            return False
        attempt = delivery.attempts + 1
        result = await client.post(delivery.url, json.dumps(delivery.body).encode())
        if should_retry(delivery.webhook_event, attempt, result.status_code, result.error):
            await uow.record_attempt(delivery, attempt, result, "pending", backoff(attempt))
        else:
            status = "delivered" if succeeded(result.status_code, result.error) else "failed"
            await uow.record_attempt(delivery, attempt, result, status, None)
        return True
