"""Billing handlers against an in-memory unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from libs.events import Envelope
from services.billing.domain.usage import BilledPrediction
from services.billing.handlers import PredictionNotYetKnown, handle_prediction_event


class FakeBillingUnitOfWork:
    """Stages changes and keeps them only when the block exits cleanly, like a transaction."""

    def __init__(self) -> None:
        self.tracked: set[str] = set()
        self.predictions: dict[str, BilledPrediction] = {}
        self.usage: dict[str, dict[str, Any]] = {}

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[FakeBillingUnitOfWork]:
        saved = (set(self.tracked), dict(self.predictions), dict(self.usage))
        try:
            yield self
        except BaseException:
            self.tracked, self.predictions, self.usage = saved
            raise

    async def track(self, message_id: str) -> bool:
        if message_id in self.tracked:
            return False
        self.tracked.add(message_id)
        return True

    async def remember_prediction(self, prediction: BilledPrediction) -> None:
        self.predictions.setdefault(prediction.prediction_id, prediction)

    async def billed_prediction(self, prediction_id: str) -> BilledPrediction | None:
        return self.predictions.get(prediction_id)

    async def record_usage(self, usage: dict[str, Any]) -> bool:
        if usage["prediction_id"] in self.usage:
            return False
        self.usage[usage["prediction_id"]] = usage
        return True


def created(prediction_id: str = "p1") -> Envelope:
    return Envelope(
        type="prediction.created",
        stream_id=f"prediction-{prediction_id}",
        stream_version=1,
        data={
            "id": prediction_id,
            "model": "alice/hello",
            "version": "abc",
            "account": "alice",
            "hardware": "cpu",
            "created_at": "2026-01-01T00:00:00+00:00",
        },
    )


def succeeded(prediction_id: str = "p1", version: int = 3) -> Envelope:
    return Envelope(
        type="prediction.succeeded",
        stream_id=f"prediction-{prediction_id}",
        stream_version=version,
        data={"id": prediction_id, "output": "hi", "predict_time": 0.5, "completed_at": "2026-01-01T00:00:01Z"},
    )


async def test_terminal_event_records_usage_once() -> None:
    uow = FakeBillingUnitOfWork()
    await handle_prediction_event(created(), uow)
    done = succeeded()
    await handle_prediction_event(done, uow)
    await handle_prediction_event(done, uow)
    assert uow.usage["p1"]["predict_time"] == 0.5
    assert uow.usage["p1"]["account"] == "alice"


async def test_a_second_terminal_event_does_not_bill_twice() -> None:
    uow = FakeBillingUnitOfWork()
    await handle_prediction_event(created(), uow)
    await handle_prediction_event(succeeded(), uow)
    late = Envelope(type="prediction.canceled", stream_id="prediction-p1", stream_version=4, data={"id": "p1"})
    await handle_prediction_event(late, uow)
    assert uow.usage["p1"]["predict_time"] == 0.5


async def test_terminal_before_created_is_not_tracked_so_the_redelivery_counts() -> None:
    uow = FakeBillingUnitOfWork()
    done = succeeded()
    with pytest.raises(PredictionNotYetKnown):
        await handle_prediction_event(done, uow)
    assert done.id not in uow.tracked
    await handle_prediction_event(created(), uow)
    await handle_prediction_event(done, uow)
    assert "p1" in uow.usage


async def test_non_terminal_events_are_ignored() -> None:
    uow = FakeBillingUnitOfWork()
    started = Envelope(type="prediction.started", stream_id="prediction-p1", stream_version=2, data={"id": "p1"})
    await handle_prediction_event(started, uow)
    assert not uow.tracked and not uow.usage
