"""A `Prefer: wait` answered from the runner's stored completion says what the scheduler then records."""

from __future__ import annotations

from libs.events import EventMetadata
from libs.predictions import (
    PredictionCreated,
    PredictionStarted,
    PredictionWaiting,
    RunnerPredictionCompleted,
    apply_event,
    render_prediction,
    view_after_completion,
)
from services.scheduler.domain import prediction as model

PID = "k3x5xyz0abcd1234efgh5678ij"
URL = "https://cogwheel.example"
CREATED_AT = "2026-01-01T00:00:00+00:00"


def _numbered(envelope, version):  # type: ignore[no-untyped-def]
    return envelope.model_copy(update={"stream_version": version})


def _starting_history() -> list:  # type: ignore[type-arg]
    created = PredictionCreated(id=PID, model="acme/hello", version="a" * 64, input={"text": "world"},
                                account="alice", created_at=CREATED_AT, webhook=None, source="api")
    waiting = PredictionWaiting(id=PID, logs="Queued behind 3 prediction(s)\n")
    return [_numbered(created.to_envelope(), 1), _numbered(waiting.to_envelope(), 2)]


def _report(status: str = "succeeded", ready_at: str | None = "2025-12-31T23:59:00+00:00") -> RunnerPredictionCompleted:
    return RunnerPredictionCompleted(
        prediction_id=PID, runner_id="runner-1", status=status, output="hello world" if status == "succeeded" else None,
        logs="said hello\n", error="boom" if status == "failed" else None, started_at="2026-01-01T00:00:01+00:00",
        completed_at="2026-01-01T00:00:02+00:00", predict_time=0.98, instance_id="inst-1", instance_ready_at=ready_at,
    )


def _view(history: list) -> dict:  # type: ignore[type-arg]
    view = None
    for event in history:
        view = apply_event(view, event)
    assert view is not None
    return view


def _as_the_scheduler_records_it(history: list, report: RunnerPredictionCompleted) -> dict:  # type: ignore[type-arg]
    state = model.load(PID, history)
    metadata = EventMetadata()
    started = model.decide_start(state, started_at=report.started_at or "", runner_id=report.runner_id,
                                 metadata=metadata, instance_id=report.instance_id)
    for event in started:
        state = model.evolve(state, event)
    ended = model.decide_complete(
        state, status=report.status, output=report.output, logs=report.logs or "", error=report.error,
        started_at=report.started_at, completed_at=report.completed_at, predict_time=report.predict_time,
        runner_id=report.runner_id, metadata=metadata,
    )
    events = [_numbered(event, len(history) + n) for n, event in enumerate(started + ended, start=1)]
    return _view(history + events)


def test_the_answer_is_the_prediction_the_scheduler_records_from_the_same_report() -> None:
    for status in ("succeeded", "failed", "canceled"):
        history, report = _starting_history(), _report(status)
        answered = view_after_completion(_view(history), report)
        assert answered is not None
        assert render_prediction(answered, URL) == render_prediction(_as_the_scheduler_records_it(history, report), URL)
        assert answered["status"] == status and answered["logs"].startswith("Queued behind 3")


def test_no_answer_when_the_instance_booted_for_the_prediction() -> None:
    # Its boot time comes from the instance's history, which only the scheduler has.
    booted_after_creation = _report(ready_at="2026-01-01T00:00:00.500000+00:00")
    assert view_after_completion(_view(_starting_history()), booted_after_creation) is None
    assert view_after_completion(_view(_starting_history()), _report(ready_at=None)) is None


def test_no_answer_once_the_prediction_has_moved_on() -> None:
    started = PredictionStarted(id=PID, started_at="2026-01-01T00:00:01+00:00", runner_id="runner-1")
    history = [*_starting_history(), _numbered(started.to_envelope(), 3)]
    assert view_after_completion(_view(history), _report()) is None


def test_a_cancel_recorded_before_the_report_wins_over_the_answer_in_the_read_model() -> None:
    history = _starting_history()
    starting = _view(history)
    answered = view_after_completion(starting, _report())
    assert answered is not None and answered["output"] == "hello world"
    # The scheduler had recorded a cancel (from the view before the report), so the report changes nothing there.
    state = model.load(PID, history)
    canceled = model.decide_cancel(state, completed_at="2026-01-01T00:00:01.500000+00:00",
                                   metadata=EventMetadata(correlation_id=PID))
    recorded = _numbered(canceled[0], 3)
    after = apply_event({**answered, "stream_version": 2}, recorded)
    assert after == apply_event(starting, recorded)  # as though the answer had never been stored
    assert (after["status"], after["output"], after["started_at"]) == ("canceled", None, None)
