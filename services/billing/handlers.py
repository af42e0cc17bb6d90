"""Turning prediction lifecycle events into usage records."""

from __future__ import annotations

from libs.events import Envelope
from services.billing.domain.usage import (
    PREDICTION_CREATED,
    TERMINAL_TYPES,
    BilledPrediction,
    prediction_id_of,
    usage_recorded,
)
from services.billing.ports import BillingUnitOfWork, UnitOfWorkFactory


class PredictionNotYetKnown(Exception):
    """A terminal event overtook its `prediction.created` (another instance has not stored it yet)."""


async def handle_prediction_event(event: Envelope, unit_of_work: UnitOfWorkFactory) -> None:
    if event.type == PREDICTION_CREATED:
        async with unit_of_work() as uow:
            if await uow.track(event.id):
                await uow.remember_prediction(BilledPrediction.from_created(event.data))
    elif event.type in TERMINAL_TYPES:
        await _record_usage(event, unit_of_work)


async def _record_usage(event: Envelope, unit_of_work: UnitOfWorkFactory) -> None:
    async with unit_of_work() as uow:
        await _record_in(uow, event)


async def record_usage_batch(events: list[Envelope], unit_of_work: UnitOfWorkFactory) -> list[str | None]:
    """Record the usage of every end in one transaction; for each event None, or why it must come back."""
    outcomes: list[str | None] = []
    handled: set[str] = set()
    async with unit_of_work() as uow:
        for event in events:
            try:
                # The same message twice in a batch (a redelivery overtaking an acknowledgement) counts once.
                if event.type in TERMINAL_TYPES and event.id not in handled:
                    await _record_in(uow, event)
                    handled.add(event.id)
                outcomes.append(None)
            except PredictionNotYetKnown as exc:
                outcomes.append(f"prediction {exc} not created yet")
    return outcomes


async def _record_in(uow: BillingUnitOfWork, event: Envelope) -> None:
    prediction_id = prediction_id_of(event.stream_id, event.data)
    # An end recorded before ends carried these facts is completed from the `prediction.created` kept then.
    prediction = BilledPrediction.from_terminal(event.data) or await uow.billed_prediction(prediction_id)
    if prediction is None:
        raise PredictionNotYetKnown(prediction_id)  # nothing written for it: the redelivery starts afresh
    if not await uow.track(event.id):
        return
    await uow.record_usage(usage_recorded(prediction, event.data, event.occurred_at.isoformat()))
