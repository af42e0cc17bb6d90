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
from services.billing.ports import UnitOfWorkFactory


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
    prediction_id = prediction_id_of(event.stream_id, event.data)
    async with unit_of_work() as uow:
        if not await uow.track(event.id):
            return
        # An end recorded before ends carried these facts is completed from the `prediction.created` kept then.
        prediction = BilledPrediction.from_terminal(event.data) or await uow.billed_prediction(prediction_id)
        if prediction is None:
            # Raising rolls the tracking row back, so the redelivery is processed in full.
            raise PredictionNotYetKnown(prediction_id)
        await uow.record_usage(usage_recorded(prediction, event.data, event.occurred_at.isoformat()))
