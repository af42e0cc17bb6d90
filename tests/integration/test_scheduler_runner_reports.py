"""Runner reports recorded by the scheduler against a real PostgreSQL, under today's type names and under the
names runners used before (`prediction.started` / `.progress` / `.completed`, possibly still in JetStream)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from libs.bus.consumer import Retry
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.events import Envelope
from libs.eventstore import EventStore
from libs.predictions import PredictionStatus
from libs.testing.scheduler import forget_pending_work
from services.runner import events as reports
from services.runner.adapters.supervisor import PredictionResult
from services.scheduler.adapters.clock import SystemClock
from services.scheduler.bootstrap import MIGRATIONS, SCHEMA
from services.scheduler.handlers import (
    CreatePrediction,
    create_prediction_once,
    get_prediction,
    list_prediction_events,
    record_runner_event,
    record_runner_events,
)
from services.scheduler.ports import VersionInfo

LEGACY_NAMES = {
    "runner.prediction_started": "prediction.started",
    "runner.prediction_progress": "prediction.progress",
    "runner.prediction_completed": "prediction.completed",
}


class FixedRegistry:
    async def get_version(self, version_id: str) -> VersionInfo:
        return VersionInfo(id=version_id, model="cogwheel/hello-world", hardware="cpu", package_key="k",
                           predictor_ref="predict.py:Predictor")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    await migrate(database_url, SCHEMA, MIGRATIONS)
    engine = create_engine(database_url)
    store = EventStore(engine, SCHEMA)
    yield store
    await store.close()
    await forget_pending_work(engine)
    await engine.dispose()


async def _new_prediction(store: EventStore) -> str:
    prediction, _ = await create_prediction_once(
        CreatePrediction(version_id="v" * 64, input={"text": uuid.uuid4().hex}, account="alice"),
        store=store, registry=FixedRegistry(), clock=SystemClock(),
    )
    return prediction.id


def _run_reports(prediction_id: str) -> list[Envelope]:
    """What a runner publishes for a prediction that streams two items and succeeds."""
    started_at = datetime.now(UTC)
    result = PredictionResult(status="succeeded", output=["Hel", "lo"], logs="one\ntwo\n", error=None,
                              started_at=started_at, completed_at=started_at + timedelta(seconds=1), predict_time=1.0)
    return [
        reports.started(prediction_id, "runner-1", started_at, None),
        reports.progress(prediction_id, "runner-1", 1, ["Hel"], "one\n", None),
        reports.progress(prediction_id, "runner-1", 2, ["lo"], "two\n", None),
        reports.completed(prediction_id, "runner-1", result, None, progress_reports=2),
    ]


def _with_former_name(report: Envelope) -> Envelope:
    return report.model_copy(update={"type": LEGACY_NAMES[report.type]})


async def _record(store: EventStore, report: Envelope) -> None:
    kind = reports.subject_of(report).rsplit(".", 1)[-1]
    await record_runner_event(Envelope.from_json(report.to_json()), kind, store=store)


async def _history(store: EventStore, prediction_id: str) -> list[tuple[str, dict]]:
    """The prediction's recorded events, without what differs between two runs (ids, times)."""
    timeless = {"id", "started_at", "completed_at", "created_at", "input"}
    return [(event.type, {k: v for k, v in event.data.items() if k not in timeless})
            for event in await list_prediction_events(prediction_id, store=store)]


async def test_reports_under_either_name_become_the_same_prediction_events(store: EventStore) -> None:
    today, former = await _new_prediction(store), await _new_prediction(store)
    for report in _run_reports(today):
        assert report.type.startswith("runner.prediction_")
        await _record(store, report)
    for report in _run_reports(former):
        await _record(store, _with_former_name(report))

    for prediction_id in (today, former):
        prediction = await get_prediction(prediction_id, store=store)
        assert (prediction.status, prediction.output, prediction.logs) == (
            PredictionStatus.SUCCEEDED, ["Hel", "lo"], "one\ntwo\n")
    assert await _history(store, today) == await _history(store, former)
    assert [t for t, _ in await _history(store, today)] == [
        "prediction.created", "prediction.started", "prediction.progressed", "prediction.progressed",
        "prediction.succeeded"]


async def test_a_report_published_again_under_the_new_name_is_recorded_once(store: EventStore) -> None:
    # A runner upgraded while a job was redelivered publishes the same report (same id) with the new type.
    prediction_id = await _new_prediction(store)
    started, first, second, completed = _run_reports(prediction_id)
    await _record(store, _with_former_name(started))
    await _record(store, _with_former_name(first))
    await _record(store, first)
    await _record(store, second)
    await _record(store, _with_former_name(completed))
    await _record(store, completed)
    prediction = await get_prediction(prediction_id, store=store)
    assert (prediction.status, prediction.output, prediction.progress_seq) == (
        PredictionStatus.SUCCEEDED, ["Hel", "lo"], 2)
    assert len(await list_prediction_events(prediction_id, store=store)) == 5


async def _rows(store: EventStore, table: str, prediction_id: str) -> list:
    from sqlalchemy import text

    async with store.engine.connect() as conn:
        return (await conn.execute(
            text(f"SELECT * FROM {store.schema}.{table} WHERE prediction_id = :id"), {"id": prediction_id}
        )).all()


async def test_the_end_takes_the_work_row_and_the_deadline_and_makes_the_data_removal_due(store: EventStore) -> None:
    prediction, _ = await create_prediction_once(
        CreatePrediction(version_id="v" * 64, input={"text": "hi"}, account="alice", cancel_after_seconds=600),
        store=store, registry=FixedRegistry(), clock=SystemClock(),
    )
    unrelated = await _new_prediction(store)
    assert len(await _rows(store, "work", prediction.id)) == 1
    assert len(await _rows(store, "deadlines", prediction.id)) == 1

    *_, completed = _run_reports(prediction.id)
    await _record(store, completed)  # a fast prediction: the completion alone, bringing its start
    await _record(store, completed)  # delivered again: recorded once

    ended = await get_prediction(prediction.id, store=store)
    assert ended.status == PredictionStatus.SUCCEEDED
    assert [t for t, _ in await _history(store, prediction.id)] == [
        "prediction.created", "prediction.started", "prediction.succeeded"]
    assert await _rows(store, "work", prediction.id) == []
    assert await _rows(store, "deadlines", prediction.id) == []
    (removal,) = await _rows(store, "data_removals", prediction.id)
    completed_at = datetime.fromisoformat(str(ended.completed_at).replace("Z", "+00:00"))
    assert removal.due_at == completed_at + timedelta(seconds=3600)
    # Only the ended prediction's rows went.
    assert len(await _rows(store, "work", unrelated)) == 1
    assert await _rows(store, "data_removals", unrelated) == []


def _batch(*events: Envelope) -> list[tuple[Envelope, str]]:
    return [(Envelope.from_json(event.to_json()), reports.subject_of(event).rsplit(".", 1)[-1]) for event in events]


async def test_a_batch_records_every_prediction_of_it_and_each_report_in_order(store: EventStore) -> None:
    first, second, third = [await _new_prediction(store) for _ in range(3)]
    one, two, three = _run_reports(first), _run_reports(second), _run_reports(third)
    # Interleaved as runners publish them: a prediction's reports come in order, several per batch.
    batch = _batch(one[0], two[0], one[1], two[1], one[2], one[3], three[3], two[2])
    assert await record_runner_events(batch, store=store) == [None] * len(batch)
    for prediction_id in (first, third):
        prediction = await get_prediction(prediction_id, store=store)
        assert prediction.status == PredictionStatus.SUCCEEDED
        assert await _rows(store, "work", prediction_id) == []
    assert (await get_prediction(first, store=store)).output == ["Hel", "lo"]
    assert [t for t, _ in await _history(store, first)] == [
        "prediction.created", "prediction.started", "prediction.progressed", "prediction.progressed",
        "prediction.succeeded"]
    # The one still running has its start in its work row, and the rest of its reports come later.
    (row,) = await _rows(store, "work", second)
    assert row.node == "runner-1" and row.started_at is not None
    assert (await get_prediction(second, store=store)).status == PredictionStatus.PROCESSING
    # A batch delivered again records nothing twice.
    assert await record_runner_events(batch + _batch(two[3]), store=store) == [None] * (len(batch) + 1)
    assert [t for t, _ in await _history(store, second)] == [
        "prediction.created", "prediction.started", "prediction.progressed", "prediction.progressed",
        "prediction.succeeded"]
    assert len(await list_prediction_events(first, store=store)) == 5


async def test_a_report_out_of_order_in_a_batch_holds_back_only_its_prediction(store: EventStore) -> None:
    waiting, other = await _new_prediction(store), await _new_prediction(store)
    started, first, second, completed = _run_reports(waiting)
    # The second progress report arrived before the first: it and what follows it come again later.
    outcomes = await record_runner_events(_batch(started, second, completed, *_run_reports(other)), store=store)
    assert outcomes[0] is None and outcomes[3:] == [None] * 4
    assert all(isinstance(outcome, Retry) for outcome in outcomes[1:3])
    assert (await get_prediction(other, store=store)).status == PredictionStatus.SUCCEEDED
    assert [t for t, _ in await _history(store, waiting)] == ["prediction.created", "prediction.started"]
    assert await record_runner_events(_batch(first, second, completed), store=store) == [None] * 3
    assert (await get_prediction(waiting, store=store)).output == ["Hel", "lo"]
