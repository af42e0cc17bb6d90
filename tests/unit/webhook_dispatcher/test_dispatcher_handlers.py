"""Dispatcher handlers against in-memory units of work and a scripted webhook client."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from standardwebhooks import Webhook

from libs.events import Envelope
from services.webhook_dispatcher.domain.retries import RetryPolicy
from services.webhook_dispatcher.domain.signing import new_secret
from services.webhook_dispatcher.handlers import (
    EventOutOfOrder,
    Sender,
    deliver_next,
    handle_prediction_event,
    send,
)
from services.webhook_dispatcher.metrics import DeliveryMetrics
from services.webhook_dispatcher.ports import AttemptRecord, AttemptResult, ClaimedDelivery, StoredView

PUBLIC_URL = "http://api.test"


class FakeDispatcherStore:
    """Both units of work over dicts; a failing block leaves no trace, like a rolled-back transaction.

    Time stands still: throttled deliveries are due at once, retries as soon as they are scheduled.
    """

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

    async def add_delivery(
        self, prediction_id: str, account: str, webhook_event: str, url: str, body: str, lease_seconds: float = 0.0
    ) -> None:
        self.deliveries.append(
            {"id": f"d{len(self.deliveries)}", "prediction_id": prediction_id, "account": account,
             "webhook_event": webhook_event, "url": url, "body": body, "attempts": 0, "status": "pending",
             "leased": False}
        )

    def _unsent_progress(self, prediction_id: str) -> list[dict[str, Any]]:
        return [
            d for d in self.deliveries
            if d["prediction_id"] == prediction_id and d["status"] == "pending"
            and d["webhook_event"] in ("output", "logs") and not d["leased"]
        ]

    async def coalesce_progress(
        self, prediction_id: str, account: str, webhook_event: str, url: str, body: str, throttle_seconds: float,
        lease_seconds: float = 0.0,
    ) -> None:
        unsent = self._unsent_progress(prediction_id)
        if unsent:
            unsent[0]["body"] = body
            if unsent[0]["webhook_event"] != "output":
                unsent[0]["webhook_event"] = webhook_event
            return
        await self.add_delivery(prediction_id, account, webhook_event, url, body)

    async def add_final_delivery(
        self, prediction_id: str, account: str, url: str, body: str, lease_seconds: float = 0.0
    ) -> None:
        for row in self._unsent_progress(prediction_id):
            row["status"] = "superseded"
        await self.add_delivery(prediction_id, account, "completed", url, body)

    async def claim_next(self, lease_seconds: float) -> ClaimedDelivery | None:
        for row in self.deliveries:
            if row["status"] == "pending" and not row["leased"]:
                row["leased"] = True
                fields = {k: v for k, v in row.items() if k not in ("status", "leased", "token")}
                return ClaimedDelivery(**fields, lease_token=row.get("token", "t"),
                                       elapsed_seconds=float(row["attempts"]))
        return None

    async def seconds_until_next_due(self) -> float | None:
        return None

    async def renew(self, delivery: ClaimedDelivery, lease_seconds: float) -> ClaimedDelivery | None:
        row = next(r for r in self.deliveries if r["id"] == delivery.id)
        if row["status"] != "pending" or not row["leased"] or row.get("token", "t") != delivery.lease_token:
            return None
        return delivery.model_copy(update={"attempts": row["attempts"]})

    async def release(self, deliveries: list[ClaimedDelivery]) -> None:
        for delivery in deliveries:
            next(r for r in self.deliveries if r["id"] == delivery.id)["leased"] = False

    async def record_attempt(self, delivery: ClaimedDelivery, record: AttemptRecord) -> bool:
        row = next(r for r in self.deliveries if r["id"] == delivery.id)
        status = "pending" if record.retry_in is not None else record.outcome
        if row.get("token", "t") != delivery.lease_token:
            return False  # the lease went to another sender; only its holder settles the delivery
        row.update(status=status, attempts=record.attempt, leased=False)
        self.attempts.append(
            {"delivery": delivery.id, "attempt": record.attempt, "status_code": record.result.status_code,
             "outcome": record.outcome, "retry_in": record.retry_in}
        )
        return True


class FakeSecrets:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    async def get_or_create(self, account: str) -> str:
        return self.keys.setdefault(account, new_secret())


class ScriptedClient:
    def __init__(self, *results: AttemptResult) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        self.sent.append((url, body, headers))
        return self.results.pop(0) if self.results else AttemptResult(status_code=200, latency_ms=1.0)


def event(type_: str, stream_version: int, **data: Any) -> Envelope:
    return Envelope(type=type_, stream_id="prediction-p1", stream_version=stream_version, data={"id": "p1", **data})


def created(webhook: str | None = "http://hook.test/x", events_filter: list[str] | None = None) -> Envelope:
    return event(
        "prediction.created", 1, model="alice/hello", version="abc", input={"text": "a"}, webhook=webhook,
        webhook_events_filter=events_filter, account="alice", hardware="cpu",
        created_at="2026-01-01T00:00:00+00:00",
    )


STARTED = event("prediction.started", 2, started_at="2026-01-01T00:00:01+00:00", runner_id="r1")
PROGRESS_OUTPUT = event("prediction.progressed", 3, output_items=["hel"], logs="step 1\n")
PROGRESS_LOGS = event("prediction.progressed", 4, output_items=[], logs="step 2\n")
SUCCEEDED = event(
    "prediction.succeeded", 5, output=["hel", "lo"], logs="step 1\nstep 2\n", started_at="2026-01-01T00:00:01+00:00",
    completed_at="2026-01-01T00:00:02+00:00", predict_time=1.0,
)
SUCCEEDED_EARLY = SUCCEEDED.model_copy(update={"stream_version": 3})


def sender(store: FakeDispatcherStore, client: ScriptedClient, secrets: FakeSecrets | None = None,
           metrics: DeliveryMetrics | None = None) -> Sender:
    return Sender(
        unit_of_work=store.unit_of_work,
        client=client,
        secrets=secrets or FakeSecrets(),
        policy=RetryPolicy(window_seconds=10.0, base_seconds=1.0),
        metrics=metrics or DeliveryMetrics(),
        lease_seconds=20.0,
    )


async def feed(store: FakeDispatcherStore, *events: Envelope) -> None:
    for e in events:
        await handle_prediction_event(e, store.unit_of_work, PUBLIC_URL)


def kinds(store: FakeDispatcherStore, status: str | None = None) -> list[str]:
    return [d["webhook_event"] for d in store.deliveries if status is None or d["status"] == status]


async def test_start_and_completed_are_queued_with_the_rendered_prediction() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(), STARTED, SUCCEEDED_EARLY)
    assert kinds(store) == ["start", "completed"]
    start, completed = (json.loads(d["body"]) for d in store.deliveries)
    assert start["status"] == "starting"
    assert completed["status"] == "succeeded" and completed["output"] == ["hel", "lo"]
    assert completed["urls"]["get"] == "http://api.test/v1/predictions/p1"
    assert {d["account"] for d in store.deliveries} == {"alice"}


@pytest.mark.parametrize(
    ("events_filter", "queued", "to_send"),
    [
        (None, ["start", "output", "completed"], ["start", "completed"]),
        (["completed"], ["completed"], ["completed"]),
        (["logs"], ["logs"], ["logs"]),
        (["output", "completed"], ["output", "completed"], ["completed"]),
        (["start", "logs"], ["start", "logs"], ["start", "logs"]),
    ],
)
async def test_filter_and_coalesced_progress(
    events_filter: list[str] | None, queued: list[str], to_send: list[str]
) -> None:
    store = FakeDispatcherStore()
    await feed(store, created(events_filter=events_filter), STARTED, PROGRESS_OUTPUT, PROGRESS_LOGS)
    await feed(store, SUCCEEDED)
    # The two progress events became one delivery; a completed one, when asked for, superseded it unsent.
    assert kinds(store) == queued
    assert kinds(store, "pending") == to_send


async def test_progress_delivery_carries_the_latest_state() -> None:
    store = FakeDispatcherStore()
    client = ScriptedClient()
    await feed(store, created(events_filter=["output", "logs"]), STARTED, PROGRESS_OUTPUT, PROGRESS_LOGS)
    assert await deliver_next(sender(store, client))
    body = json.loads(client.sent[0][1])
    assert body["output"] == ["hel"] and body["logs"] == "step 1\nstep 2\n" and body["status"] == "processing"
    assert kinds(store, "delivered") == ["output"]


async def test_completed_after_a_sent_progress_delivery_keeps_it() -> None:
    store = FakeDispatcherStore()
    client = ScriptedClient()
    await feed(store, created(events_filter=["logs", "completed"]), STARTED, PROGRESS_OUTPUT)
    assert await deliver_next(sender(store, client))
    await feed(store, PROGRESS_LOGS, SUCCEEDED)
    assert kinds(store, "delivered") == ["logs"]
    assert kinds(store, "superseded") == ["logs"]
    assert kinds(store, "pending") == ["completed"]


async def test_progress_after_completion_is_ignored() -> None:
    store = FakeDispatcherStore()
    late = PROGRESS_OUTPUT.model_copy(update={"stream_version": 4})
    await feed(store, created(), STARTED, SUCCEEDED_EARLY, late)
    assert kinds(store) == ["start", "completed"]


async def test_filter_and_missing_webhook() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(webhook=None), STARTED, SUCCEEDED_EARLY)
    assert store.deliveries == []


async def test_a_gap_is_retried_and_leaves_nothing_behind() -> None:
    store = FakeDispatcherStore()
    await feed(store, created())
    with pytest.raises(EventOutOfOrder):
        await feed(store, SUCCEEDED_EARLY)
    assert SUCCEEDED_EARLY.id not in store.tracked
    await feed(store, STARTED, SUCCEEDED_EARLY)
    assert store.views["p1"].stream_version == 3
    assert kinds(store) == ["start", "completed"]


async def test_redelivered_and_stale_events_queue_nothing_twice() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(), STARTED, SUCCEEDED_EARLY, SUCCEEDED_EARLY)
    stale_copy = SUCCEEDED_EARLY.model_copy(update={"id": "another-id"})
    await feed(store, stale_copy)
    assert len(store.deliveries) == 2


async def test_completed_is_retried_with_the_same_webhook_id_and_a_valid_signature() -> None:
    store = FakeDispatcherStore()
    secrets = FakeSecrets()
    await feed(store, created(events_filter=["completed"]), STARTED, SUCCEEDED_EARLY)
    client = ScriptedClient(
        AttemptResult(status_code=503, latency_ms=1.0),
        AttemptResult(status_code=None, latency_ms=1.0, error="ConnectError"),
        AttemptResult(status_code=429, latency_ms=1.0),
        AttemptResult(status_code=200, latency_ms=1.0),
    )
    while await deliver_next(sender(store, client, secrets)):
        pass
    assert [a["status_code"] for a in store.attempts] == [503, None, 429, 200]
    assert [a["outcome"] for a in store.attempts] == ["retrying", "retrying", "retrying", "delivered"]
    assert all(a["retry_in"] > 0 for a in store.attempts[:3])
    assert store.deliveries[0]["status"] == "delivered"
    assert len({headers["webhook-id"] for _, _, headers in client.sent}) == 1
    verifier = Webhook(secrets.keys["alice"])
    for _, body, headers in client.sent:
        assert verifier.verify(body, headers)["status"] == "succeeded"


@pytest.mark.parametrize(
    "result",
    [
        AttemptResult(status_code=404, latency_ms=1.0),
        AttemptResult(status_code=302, latency_ms=1.0),
        AttemptResult(status_code=None, latency_ms=1.0, error="refused: private", refused=True),
    ],
)
async def test_completed_is_not_retried_when_retrying_cannot_help(result: AttemptResult) -> None:
    store = FakeDispatcherStore()
    await feed(store, created(events_filter=["completed"]), STARTED, SUCCEEDED_EARLY)
    client = ScriptedClient(result)
    assert await deliver_next(sender(store, client))
    assert not await deliver_next(sender(store, client))
    assert [a["outcome"] for a in store.attempts] == ["failed"]


async def test_start_is_not_retried_and_attempts_are_counted() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(events_filter=["start"]))
    reader = InMemoryMetricReader()
    metrics = DeliveryMetrics(MeterProvider(metric_readers=[reader]).get_meter("test"))
    client = ScriptedClient(AttemptResult(status_code=500, latency_ms=1.0))
    assert await deliver_next(sender(store, client, metrics=metrics))
    assert not await deliver_next(sender(store, client, metrics=metrics))
    assert store.deliveries[0]["status"] == "failed"
    data = reader.get_metrics_data()
    points = {
        metric.name: [(p.attributes, getattr(p, "value", None)) for p in metric.data.data_points]
        for rm in data.resource_metrics for sm in rm.scope_metrics for metric in sm.metrics
    }
    assert points["cogwheel.webhook.attempts"] == [
        ({"webhook_event": "start", "outcome": "failed", "status_code": 500}, 1)
    ]
    assert points["cogwheel.webhook.failed_deliveries"] == [({"webhook_event": "start"}, 1)]


def test_retry_policy_backs_off_exponentially_with_jitter_within_the_window() -> None:
    policy = RetryPolicy(window_seconds=60.0, base_seconds=1.0, max_interval_seconds=20.0)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 20.0), (30, 20.0)]:
        delay = policy.backoff(attempt, rng)
        assert ceiling / 2 <= delay <= ceiling
    assert policy.next_retry_in(3, 59.5, rng) == pytest.approx(0.5)
    assert policy.next_retry_in(1, 60.0, rng) is None


async def test_a_delivery_taken_over_by_another_sender_is_not_posted_by_the_first() -> None:
    store = FakeDispatcherStore()
    await feed(store, created(), STARTED, SUCCEEDED_EARLY)
    first_client, second_client = ScriptedClient(), ScriptedClient()
    async with store.unit_of_work() as uow:
        start = await uow.claim_next(20.0)
    assert start is not None
    # The first sender's lease ran out while the delivery waited in its memory; another sender claimed it.
    row = next(r for r in store.deliveries if r["id"] == start.id)
    row["token"] = "taken-over"
    assert await send(sender(store, second_client), start.model_copy(update={"lease_token": "taken-over"}))
    assert not await send(sender(store, first_client), start)
    assert first_client.sent == []
    assert len(second_client.sent) == 1
    assert [a["attempt"] for a in store.attempts if a["delivery"] == start.id] == [1]


class DatabaseDownWhileRecording(FakeDispatcherStore):
    """Recording an attempt fails `failures` times, as it does on the broken pooled connections of a restart."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def record_attempt(self, delivery: ClaimedDelivery, record: AttemptRecord) -> bool:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("server closed the connection unexpectedly")
        return await super().record_attempt(delivery, record)


async def test_an_attempt_whose_recording_fails_is_recorded_once_the_database_is_back_and_not_posted_again() -> None:
    store = DatabaseDownWhileRecording(failures=3)
    await feed(store, created(events_filter=["completed"]), STARTED, SUCCEEDED_EARLY)
    client = ScriptedClient()
    while await deliver_next(sender(store, client)):
        pass
    assert store.failures == 0
    assert len(client.sent) == 1
    assert [(a["attempt"], a["outcome"]) for a in store.attempts] == [(1, "delivered")]
    assert store.deliveries[0]["status"] == "delivered"
