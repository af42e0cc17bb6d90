"""Dispatcher handlers against in-memory units of work and a scripted webhook client."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from libs.events import Envelope
from services.webhook_dispatcher.handlers import EventOutOfOrder, deliver_next, handle_prediction_event
from services.webhook_dispatcher.ports import AttemptResult, PendingDelivery, StoredView

PUBLIC_URL = "http://api.test"


class FakeDispatcherStore:
    """Both units of work over dicts; a failing block leaves no trace, like a rolled-back transaction."""

    def __init__(self) -> None:
        self.tracked: set[str] = set()
        self.views: dict[str, StoredView] = {}
        self.deliveries: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[FakeDispatcherStore]:
        saved = copy.deepcopy((self.tracked, self.views, self.deliveries, self.attempts))
        try:
            yield self
        except BaseException:
            self.tracked, self.views, self.deliveries, self.attempts = saved
            raise

    async def track(self, message_id: str) -> bool:
        if message_id in self.tracked:
            return False
        self.tracked.add(message_id)
        return True

    async def load_view(self, prediction_id: str) -> StoredView | None:
        return self.views.get(prediction_id)

    async def save_view(self, prediction_id: str, stream_version: int, view: dict[str, Any]) -> None:
        self.views[prediction_id] = StoredView(stream_version=stream_version, view=view)

    async def add_delivery(self, prediction_id: str, webhook_event: str, url: str, body: dict[str, Any]) -> None:
        self.deliveries.append(
            {"id": str(len(self.deliveries)), "prediction_id": prediction_id, "webhook_event": webhook_event,
             "url": url, "body": body, "attempts": 0, "status": "pending"}
        )

    async def claim_next(self) -> PendingDelivery | None:
        for row in self.deliveries:
            if row["status"] == "pending":
                return PendingDelivery(**{k: v for k, v in row.items() if k != "status"})
        return None

    async def record_attempt(
        self, delivery: PendingDelivery, attempt: int, result: AttemptResult, status: str, retry_in: float | None
    ) -> None:
        row = next(r for r in self.deliveries if r["id"] == delivery.id)
        row.update(status=status, attempts=attempt)
        self.attempts.append({"attempt": attempt, "status_code": result.status_code, "retry_in": retry_in})


class ScriptedClient:
    def __init__(self, *results: AttemptResult) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def post(self, url: str, body: bytes) -> AttemptResult:
        self.sent.append((url, json.loads(body)))
        return self.results.pop(0)


def event(type_: str, stream_version: int, **data: Any) -> Envelope:
    return Envelope(type=type_, stream_id="prediction-p1", stream_version=stream_version, data={"id": "p1", **data})


def created(webhook: str | None = "http://hook.test/x", events_filter: list[str] | None = None) -> Envelope:
    return event(
        "prediction.created", 1, model="alice/hello", version="abc", input={"text": "a"}, webhook=webhook,
        webhook_events_filter=events_filter, account="alice", hardware="cpu",
        created_at="2026-01-01T00:00:00+00:00",
    )


STARTED = event("prediction.started", 2, started_at="2026-01-01T00:00:01+00:00", runner_id="r1")
SUCCEEDED = event(
    "prediction.succeeded", 3, output="hello a", logs="", started_at="2026-01-01T00:00:01+00:00",
    completed_at="2026-01-01T00:00:02+00:00", predict_time=1.0,
)


async def feed(store: FakeDispatcherStore, *events: Envelope) -> None:
    for e in events:
        await handle_prediction_event(e, store.unit_of_work, PUBLIC_URL)


async def test_start_and_completed_are_queued_with_the_rendered_prediction() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(), STARTED, SUCCEEDED)
    assert [d["webhook_event"] for d in store.deliveries] == ["start", "completed"]
    start, completed = (d["body"] for d in store.deliveries)
    assert start["status"] == "starting"
    assert completed["status"] == "succeeded" and completed["output"] == "hello a"
    assert completed["urls"]["get"] == "http://api.test/v1/predictions/p1"


async def test_filter_and_missing_webhook() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(events_filter=["completed"]), STARTED, SUCCEEDED)
    assert [d["webhook_event"] for d in store.deliveries] == ["completed"]
    store = FakeDispatcherStore()
    await feed(store, created(webhook=None), STARTED, SUCCEEDED)
    assert store.deliveries == []


async def test_a_gap_is_retried_and_leaves_nothing_behind() -> None:
    store = FakeDispatcherStore()
    await feed(store, created())
    with pytest.raises(EventOutOfOrder):
        await feed(store, SUCCEEDED)
    assert SUCCEEDED.id not in store.tracked
    await feed(store, STARTED, SUCCEEDED)
    assert store.views["p1"].stream_version == 3
    assert [d["webhook_event"] for d in store.deliveries] == ["start", "completed"]


async def test_redelivered_and_stale_events_queue_nothing_twice() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(), STARTED, SUCCEEDED, SUCCEEDED)
    stale_copy = SUCCEEDED.model_copy(update={"id": "another-id"})
    await feed(store, stale_copy)
    assert len(store.deliveries) == 2


async def test_completed_is_retried_after_5xx_until_delivered() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(events_filter=["completed"]), STARTED, SUCCEEDED)
    client = ScriptedClient(
        AttemptResult(status_code=503, latency_ms=1.0), AttemptResult(status_code=None, latency_ms=1.0, error="x"),
        AttemptResult(status_code=200, latency_ms=1.0),
    )
    while await deliver_next(store.unit_of_work, client):
        pass
    assert [a["status_code"] for a in store.attempts] == [503, None, 200]
    assert [a["retry_in"] for a in store.attempts] == [0.5, 1.0, None]
    assert store.deliveries[0]["status"] == "delivered"


async def test_start_is_not_retried() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(events_filter=["start"]))
    client = ScriptedClient(AttemptResult(status_code=500, latency_ms=1.0))
    assert await deliver_next(store.unit_of_work, client)
    assert not await deliver_next(store.unit_of_work, client)
    assert store.deliveries[0]["status"] == "failed"
