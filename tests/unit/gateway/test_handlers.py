"""The gateway's application handlers over fakes of its ports: the rules both API routes and pages follow."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from libs.predictions import RunnerPredictionCompleted
from libs.rpc import RpcNotFound
from services.gateway import handlers
from services.gateway.adapters.registry_grpc import Account
from services.gateway.errors import ApiError
from services.gateway.sharing import DATA_REMOVED, REMOVED_FIELDS, SHARED, UNSHARED, PageState
from services.gateway.waiters import Waiter

ALICE = Account("alice", "user", "Alice", organizations=("acme",))
BOB = Account("bob", "user", "Bob")

SCHEMA = {"components": {"schemas": {"Input": {
    "type": "object", "required": ["text"], "properties": {"text": {"type": "string", "x-order": 0}}}}}}


def _version(owner: str, name: str, version_id: str) -> dict[str, Any]:
    return {"id": version_id, "owner": owner, "name": name, "openapi_schema": SCHEMA}


class FakeRpcNotFound(RpcNotFound):
    def __init__(self) -> None:
        Exception.__init__(self, "not found")


class FakeRegistry:
    def __init__(self) -> None:
        public = _version("acme", "public", "a" * 64)
        private = _version("acme", "secret", "b" * 64)
        self.models = {
            ("acme", "public"): {"owner": "acme", "name": "public", "visibility": "public", "latest_version": public},
            ("acme", "secret"): {"owner": "acme", "name": "secret", "visibility": "private", "latest_version": private},
        }
        self.versions = {public["id"]: public, private["id"]: private}

    async def get_model(self, owner: str, name: str) -> dict[str, Any]:
        if (owner, name) not in self.models:
            raise FakeRpcNotFound()
        return self.models[(owner, name)]

    async def get_version_cached(self, version_id: str) -> dict[str, Any]:
        if version_id not in self.versions:
            raise FakeRpcNotFound()
        return self.versions[version_id]


class FakeScheduler:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.canceled: list[str] = []

    async def create_prediction(self, **request: Any) -> dict[str, Any]:
        self.created.append(request)
        return {"id": f"p{len(self.created)}", "account": request["account"], "status": "starting",
                "source": request["source"], "input": request["input"], "output": None}

    async def get_prediction(self, prediction_id: str) -> dict[str, Any]:
        raise FakeRpcNotFound()

    async def cancel_prediction(self, prediction_id: str) -> dict[str, Any]:
        self.canceled.append(prediction_id)
        return {"id": prediction_id, "status": "canceled"}


class FakeProjection:
    def __init__(self) -> None:
        self.views: dict[str, dict[str, Any]] = {}

    async def apply_created(self, view: dict[str, Any]) -> None:
        self.views.setdefault(view["id"], view)

    async def get(self, prediction_id: str) -> dict[str, Any] | None:
        return self.views.get(prediction_id)


class FakePages:
    def __init__(self, projection: FakeProjection) -> None:
        self.projection = projection
        self.events: list[tuple[str, str, str]] = []
        self.shared: set[str] = set()

    async def state(self, prediction_id: str) -> PageState:
        return PageState(shared=prediction_id in self.shared)

    async def record(self, prediction_id: str, event_type: str, actor: str) -> None:
        self.events.append((prediction_id, event_type, actor))
        if event_type == SHARED:
            self.shared.add(prediction_id)
        elif event_type == UNSHARED:
            self.shared.discard(prediction_id)
        elif event_type == DATA_REMOVED:
            self.projection.views[prediction_id].update(REMOVED_FIELDS)


@pytest.fixture
def deps() -> Any:
    projection = FakeProjection()
    return SimpleNamespace(registry=FakeRegistry(), scheduler=FakeScheduler(), projection=projection,
                           pages=FakePages(projection), bus=SimpleNamespace(js=None))


async def test_private_models_run_only_for_their_owners(deps: Any) -> None:
    assert (await handlers.latest_runnable_version(deps, ALICE, "acme", "secret"))["id"] == "b" * 64
    with pytest.raises(ApiError) as hidden:
        await handlers.latest_runnable_version(deps, BOB, "acme", "secret")
    assert hidden.value.status == 404
    with pytest.raises(ApiError) as by_id:
        await handlers.resolve_version(deps, BOB, "b" * 64)
    assert by_id.value.status == 422
    assert (await handlers.resolve_version(deps, BOB, "acme/public"))["id"] == "a" * 64
    with pytest.raises(ApiError):
        await handlers.resolve_version(deps, BOB, "acme/secret:" + "a" * 64)  # a version of another model


async def test_create_checks_input_before_the_scheduler_and_records_the_source(deps: Any) -> None:
    version = deps.registry.versions["a" * 64]
    with pytest.raises(ApiError) as invalid:
        await handlers.create_prediction(deps, BOB, version, handlers.NewPrediction(input={}, source="web"))
    assert invalid.value.status == 422 and invalid.value.extra["invalid_fields"][0]["description"] == "text is required"
    with pytest.raises(ApiError) as bad_hook:
        await handlers.create_prediction(deps, BOB, version, handlers.NewPrediction(input={"text": "x"},
                                                                                     webhook="ftp://x"))
    assert bad_hook.value.status == 422
    assert deps.scheduler.created == []
    view = await handlers.create_prediction(
        deps, BOB, version, handlers.NewPrediction(input={"text": "x"}, source="web")
    )
    assert deps.scheduler.created[0]["source"] == "web" and deps.scheduler.created[0]["account"] == "bob"
    assert await deps.projection.get(view["id"]) == view


async def test_pages_of_predictions_are_private_until_shared(deps: Any) -> None:
    version = deps.registry.versions["a" * 64]
    view = await handlers.create_prediction(deps, ALICE, version, handlers.NewPrediction(input={"text": "x"}))
    for stranger in (BOB, None):
        with pytest.raises(ApiError):
            await handlers.viewable_prediction(deps, stranger, view["id"])
    with pytest.raises(ApiError):
        await handlers.share_prediction(deps, BOB, view["id"], True)
    assert (await handlers.share_prediction(deps, ALICE, view["id"], True)).shared
    assert (await handlers.viewable_prediction(deps, None, view["id"]))["id"] == view["id"]
    # Sharing twice records one event; a stranger still cannot cancel or unshare it.
    await handlers.share_prediction(deps, ALICE, view["id"], True)
    assert [event for _, event, _ in deps.pages.events] == [SHARED]
    with pytest.raises(ApiError):
        await handlers.cancel_prediction(deps, BOB, view["id"])
    assert not (await handlers.share_prediction(deps, ALICE, view["id"], False)).shared
    with pytest.raises(ApiError):
        await handlers.viewable_prediction(deps, BOB, view["id"])


async def test_data_is_removed_only_once_a_prediction_finished(deps: Any) -> None:
    version = deps.registry.versions["a" * 64]
    view = await handlers.create_prediction(deps, ALICE, version, handlers.NewPrediction(input={"text": "x"}))
    with pytest.raises(ApiError) as running:
        await handlers.remove_prediction_data(deps, ALICE, view["id"])
    assert running.value.status == 409
    deps.projection.views[view["id"]].update(status="succeeded", output="hello x")
    with pytest.raises(ApiError):
        await handlers.remove_prediction_data(deps, BOB, view["id"])
    removed = await handlers.remove_prediction_data(deps, ALICE, view["id"])
    assert removed["data_removed"] and removed["output"] is None and removed["input"] == {}
    assert deps.pages.events == [(view["id"], DATA_REMOVED, "alice")]


def test_output_keys_are_found_at_any_depth() -> None:
    output = {"image": "cogwheel-output:p1/1-a.png", "more": ["cogwheel-output:p1/2-b.wav", "plain"], "n": 3}
    assert handlers.output_keys(output) == ["p1/1-a.png", "p1/2-b.wav"]
    assert handlers.output_keys("just text") == []


class GrowingWebhookRecord:
    """A dispatcher whose record gains an attempt between reads, as a live one does while a page renders."""

    def __init__(self) -> None:
        self.attempts: dict[str, list[dict[str, Any]]] = {
            "p1": [{"attempted_at": "2026-01-01T00:00:01", "outcome": "failed"}],
            "p3": [{"attempted_at": "2026-01-01T00:00:03", "outcome": "delivered"}],
        }
        self.asked: list[str] = []

    def _record(self, prediction_id: str, when: str, outcome: str) -> None:
        self.attempts.setdefault(prediction_id, []).append({"attempted_at": when, "outcome": outcome})

    async def delivery_attempts(self, prediction_id: str, account: str) -> list[dict[str, Any]]:
        self.asked.append(prediction_id)
        found = list(self.attempts.get(prediction_id, []))
        self._record("p9", "2026-01-01T00:00:09", "failed")
        return found

    async def summary(self, account: str, hours: int) -> dict[str, Any]:
        everything = [a for attempts in self.attempts.values() for a in attempts]
        return {"attempts": len(everything), "failed": sum(a["outcome"] == "failed" for a in everything)}


async def test_webhook_activity_counts_at_least_every_attempt_it_lists() -> None:
    record = GrowingWebhookRecord()
    predictions = [{"id": "p1", "webhook": "https://a"}, {"id": "p2"}, {"id": "p3", "webhook": "https://b"}]
    activity = await handlers.webhook_activity(record, ALICE, predictions)
    # Only predictions with a webhook are asked about, and the newest attempt comes first.
    assert record.asked == ["p1", "p3"]
    assert [d["prediction_id"] for d in activity.deliveries] == ["p3", "p1"]
    listed_failures = sum(d["outcome"] == "failed" for d in activity.deliveries)
    assert activity.summary["failed"] >= listed_failures
    assert activity.summary["attempts"] >= len(activity.deliveries)


class RecordingLater:
    """A scheduler whose event history lacks the end until `record_end` (it answered from the runner's report)."""

    def __init__(self) -> None:
        self.events = [{"type": "prediction.created"}, {"type": "prediction.started"}]
        self.reads = 0

    async def list_events(self, prediction_id: str) -> list[dict[str, Any]]:
        self.reads += 1
        return list(self.events)

    def record_end(self) -> None:
        self.events.append({"type": "prediction.succeeded"})


class OneWaiter:
    def __init__(self) -> None:
        self.waiter = Waiter()
        self.registered = 0

    def register(self, prediction_id: str) -> Waiter:
        self.registered += 1
        return self.waiter

    def unregister(self, prediction_id: str, waiter: Waiter) -> None:
        self.registered -= 1


async def test_the_history_of_an_answered_prediction_waits_for_its_recorded_end(deps: Any) -> None:
    deps.scheduler, deps.waiters = RecordingLater(), OneWaiter()
    deps.projection.views["p1"] = {"id": "p1", "account": "alice", "status": "succeeded"}

    async def scheduler_records_the_end() -> None:
        await asyncio.sleep(0.05)
        deps.scheduler.record_end()
        deps.waiters.waiter.changed.set()

    recorder = asyncio.create_task(scheduler_records_the_end())
    events = await handlers.list_prediction_events(deps, ALICE, "p1")
    await recorder
    assert [e["type"] for e in events] == ["prediction.created", "prediction.started", "prediction.succeeded"]
    assert deps.waiters.registered == 0


async def test_the_history_of_a_running_prediction_is_read_once(deps: Any) -> None:
    deps.scheduler, deps.waiters = RecordingLater(), OneWaiter()
    deps.projection.views["p1"] = {"id": "p1", "account": "alice", "status": "processing"}
    events = await handlers.list_prediction_events(deps, ALICE, "p1")
    assert [e["type"] for e in events] == ["prediction.created", "prediction.started"]
    assert deps.scheduler.reads == 1 and deps.waiters.registered == 0


async def test_a_history_whose_end_is_never_recorded_is_returned_as_it_is(deps: Any, monkeypatch) -> None:
    monkeypatch.setattr(handlers, "EVENTS_CATCH_UP_SECONDS", 0.2)
    deps.scheduler, deps.waiters = RecordingLater(), OneWaiter()
    deps.projection.views["p1"] = {"id": "p1", "account": "alice", "status": "failed"}
    events = await handlers.list_prediction_events(deps, ALICE, "p1")
    assert [e["type"] for e in events] == ["prediction.created", "prediction.started"]
    assert deps.scheduler.reads >= 2 and deps.waiters.registered == 0


class SlowReadModel:
    """A read model whose insert of a new prediction takes a while; an answer stored before it would be lost."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.answers_over_missing_rows = 0
        self.storing: set[asyncio.Task[None]] = set()

    async def apply_created(self, view: dict[str, Any]) -> None:
        await asyncio.sleep(0.05)
        self.rows.setdefault(view["id"], view)

        self.storing: set[asyncio.Task[None]] = set()

    async def get(self, prediction_id: str) -> dict[str, Any] | None:
        if self.storing:
            await asyncio.wait(self.storing)
        return self.rows.get(prediction_id)

    def record_answer_soon(self, view: dict[str, Any], stream_version: int) -> None:
        if view["id"] not in self.rows:
            self.answers_over_missing_rows += 1

        async def store() -> None:
            await asyncio.sleep(0.01)
            self.rows[view["id"]] = view

        self.storing.add(asyncio.create_task(store()))


class CompletedAtOnce(OneWaiter):
    def register(self, prediction_id: str) -> Waiter:
        waiter = super().register(prediction_id)
        waiter.completion = RunnerPredictionCompleted(
            prediction_id=prediction_id, runner_id="runner-1", status="succeeded", output="hello x",
            started_at="2026-01-01T00:00:01+00:00", completed_at="2026-01-01T00:00:02+00:00", predict_time=0.5)
        waiter.changed.set()
        return waiter


async def test_a_waited_prediction_is_stored_before_its_answer_and_before_it_is_returned(deps: Any) -> None:
    deps.projection, deps.waiters = SlowReadModel(), CompletedAtOnce()

    async def create_prediction(**request: Any) -> dict[str, Any]:
        return {"id": "p1", "account": request["account"], "status": "starting", "source": "api",
                "input": request["input"], "output": None, "logs": "", "created_at": "2026-01-01T00:00:00+00:00",
                "stream_version": 1}

    deps.scheduler.create_prediction = create_prediction
    version = deps.registry.versions["a" * 64]
    created = await handlers.create_prediction_and_wait(
        deps, ALICE, version, handlers.NewPrediction(input={"text": "x"}), 5)
    assert created.view["status"] == "succeeded" and created.view["output"] == "hello x"
    assert deps.projection.answers_over_missing_rows == 0
    assert (await deps.projection.get("p1"))["status"] == "succeeded"
    assert deps.waiters.registered == 0


class CountingReadModel(SlowReadModel):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def get(self, prediction_id: str) -> dict[str, Any] | None:
        self.reads += 1
        return await super().get(prediction_id)


def _creates(view: dict[str, Any]) -> Any:
    async def create_prediction(**request: Any) -> dict[str, Any]:
        return dict(view)

    return create_prediction


STARTING = {"id": "p1", "account": "alice", "status": "starting", "source": "api", "input": {"text": "x"},
            "output": None, "logs": "", "created_at": "2026-01-01T00:00:00+00:00", "stream_version": 1}


async def test_a_prediction_just_created_is_answered_from_its_completion_without_a_read(deps: Any) -> None:
    deps.projection, deps.waiters = CountingReadModel(), CompletedAtOnce()
    deps.scheduler.create_prediction = _creates(STARTING)
    created = await handlers.create_prediction_and_wait(
        deps, ALICE, deps.registry.versions["a" * 64], handlers.NewPrediction(input={"text": "x"}), 5)
    assert created.view["status"] == "succeeded" and created.view["output"] == "hello x"
    assert deps.projection.reads == 0


async def test_an_idempotent_replay_waits_on_what_the_read_model_holds(deps: Any) -> None:
    """A replayed create answers with an earlier prediction, which may have moved on since: it is read first, and
    a recorded end wins over the runner's report."""
    deps.projection, deps.waiters = CountingReadModel(), CompletedAtOnce()
    deps.projection.rows["p1"] = {**STARTING, "status": "canceled", "output": None}
    deps.scheduler.create_prediction = _creates({**STARTING, "idempotent_replay": True})
    created = await handlers.create_prediction_and_wait(
        deps, ALICE, deps.registry.versions["a" * 64], handlers.NewPrediction(input={"text": "x"}), 5)
    assert created.replayed and created.view["status"] == "canceled"
    assert deps.projection.reads == 1
