"""Golden JSON of every prediction event and runner report (tests/golden/events).

(a) the typed model of a fixed example serialises to exactly the golden envelope, key order included;
(b) each golden file parses back to the same data and folds;
(c) older shapes still stored or in flight (tests/golden/events/older) parse and fold: the oldest
    `prediction.created`, a runner-reported cancel, and the runner reports under their former type names.

`COGWHEEL_UPDATE_GOLDEN=1` rewrites the files of (a) from the examples below; review the diff: a changed
golden file is a changed wire format, which needs a new schema version and a reader for the old one.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.events import Envelope, EventMetadata
from libs.predictions import (
    PREDICTION_EVENT_TYPES,
    PredictionCanceled,
    PredictionCreated,
    PredictionDataRemoved,
    PredictionFailed,
    PredictionProgressed,
    PredictionStarted,
    PredictionStatus,
    PredictionSucceeded,
    PredictionWaiting,
    RunnerPredictionCompleted,
    RunnerPredictionProgress,
    RunnerPredictionStarted,
    apply_event,
    fold_all,
    parse_prediction_event,
    parse_runner_report,
    render_prediction,
)
from libs.predictions.events import RUNNER_REPORT_CLASSES, EventData
from services.runner import events as runner_events
from services.runner.adapters.supervisor import PredictionResult
from services.scheduler import handlers
from services.scheduler.domain import prediction as model

GOLDEN = Path(__file__).parents[2] / "golden" / "events"
OLDER = GOLDEN / "older"
UPDATE = os.environ.get("COGWHEEL_UPDATE_GOLDEN") == "1"

PID = "k3x5xyz0abcd1234efgh5678ij"
AT = datetime(2026, 1, 1, tzinfo=UTC)
METADATA = EventMetadata(correlation_id=PID, causation_id="c0ffee00-0000-4000-8000-000000000001",
                         traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", actor="alice")

# What every end carries for billing (the created example's account, model, version and hardware).
BILLING_FACTS = {"account": "alice", "model": "acme/hello",
                 "version": "5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa", "hardware": "gpu-t4"}

# One fixed example per type, the fields set as the producers set them.
EXAMPLES: list[EventData] = [
    PredictionCreated(
        id=PID, model="acme/hello", version="5c7d5dc6dd8bf75c1acaa8565735e7986bc5b66206b55cca93cb72c9bf15ccaa",
        hardware="gpu-t4", input={"text": "world", "api_key": "**********"}, account="alice",
        created_at="2026-01-01T00:00:00+00:00", webhook="https://example.com/hook", webhook_events_filter=["completed"],
        source="api", stream=True, deadline="2026-01-01T00:00:30+00:00", deployment="acme/hello-app",
        stream_token="Q2d8nq3cFv1x0a1MZl1Cw9zKx3b4hYQx",
    ),
    PredictionStarted(id=PID, started_at="2026-01-01T00:00:02+00:00", runner_id="runner-1",
                      instance_id="inst-1", boot_time=1.5),
    PredictionWaiting(id=PID, logs="Queued behind 2 prediction(s)\n"),
    PredictionProgressed(id=PID, seq=1, output_items=["Hel", "lo"], logs="step 1\n"),
    PredictionSucceeded(id=PID, output=["Hel", "lo", " world"], logs="step 1\nstep 2\n", error=None,
                        started_at="2026-01-01T00:00:02+00:00", completed_at="2026-01-01T00:00:03+00:00",
                        predict_time=0.98, **BILLING_FACTS, boot_time=1.5),
    PredictionFailed(id=PID, output=None, logs="Traceback ...\n", error="ValueError: boom",
                     started_at="2026-01-01T00:00:02+00:00", completed_at="2026-01-01T00:00:03+00:00",
                     predict_time=0.5, **BILLING_FACTS),
    PredictionCanceled(id=PID, output=["Hel", "lo"], logs="step 1\n", started_at="2026-01-01T00:00:02+00:00",
                       completed_at="2026-01-01T00:00:30+00:00", predict_time=None, **BILLING_FACTS,
                       reason="deadline"),
    PredictionDataRemoved(id=PID, removed_at="2026-01-01T01:00:30+00:00"),
    RunnerPredictionStarted(prediction_id=PID, runner_id="runner-1", started_at="2026-01-01T00:00:02+00:00",
                            instance_id="inst-1", instance_ready_at="2026-01-01T00:00:01.500000+00:00"),
    RunnerPredictionProgress(prediction_id=PID, runner_id="runner-1", seq=1, output_items=["Hel", "lo"],
                             logs="step 1\n"),
    RunnerPredictionCompleted(prediction_id=PID, runner_id="runner-1", status="succeeded",
                              output=["Hel", "lo", " world"], logs="step 1\nstep 2\n", error=None,
                              started_at="2026-01-01T00:00:02+00:00", completed_at="2026-01-01T00:00:03+00:00",
                              predict_time=0.98, instance_id="inst-1"),
]
# The order they happen in, for folding (the runner's reports are not the prediction's events).
LIFECYCLE = ["prediction.created", "prediction.waiting", "prediction.started", "prediction.progressed",
             "prediction.succeeded", "prediction.data_removed"]


def _envelope(example: EventData, stream_version: int = 1) -> Envelope:
    stream = f"prediction-{PID}" if example.TYPE.startswith("prediction.") else f"runner-prediction-{PID}"
    return Envelope(id="6f0e3d52-9b3c-4c1e-8f5e-0d6a2b9c7e11", type=example.TYPE, schema_version=example.SCHEMA_VERSION,
                    stream_id=stream, stream_version=stream_version, occurred_at=AT, data=example.to_data(),
                    metadata=METADATA)


def _path(example: EventData) -> Path:
    return GOLDEN / f"{example.TYPE}.v{example.SCHEMA_VERSION}.json"


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    text = path.read_text()
    return text, json.loads(text)


def _pretty(envelope: Envelope) -> str:
    return json.dumps(json.loads(envelope.to_json()), indent=2, ensure_ascii=False) + "\n"


def test_every_event_type_has_one_example() -> None:
    assert {e.TYPE for e in EXAMPLES} == set(PREDICTION_EVENT_TYPES) | {c.TYPE for c in RUNNER_REPORT_CLASSES}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.TYPE)
def test_typed_example_serialises_to_exactly_the_golden_json(example: EventData) -> None:
    expected = _pretty(_envelope(example))
    if UPDATE:
        _path(example).write_text(expected)
    golden, _ = _read(_path(example))
    # Text comparison: key order and null-versus-absent count, as they do for JetStream payloads.
    assert expected == golden


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.TYPE)
def test_golden_json_parses_back_to_the_same_data(example: EventData) -> None:
    _, golden = _read(_path(example))
    envelope = Envelope.from_json(json.dumps(golden))
    typed = (parse_prediction_event(envelope) if envelope.type in PREDICTION_EVENT_TYPES
             else parse_runner_report(envelope))
    assert type(typed) is type(example)
    assert json.dumps(typed.to_data()) == json.dumps(golden["data"])


def _golden_envelope(event_type: str, version: int) -> Envelope:
    _, golden = _read(GOLDEN / f"{event_type}.v1.json")
    return Envelope.model_validate({**golden, "stream_version": version})


def test_golden_lifecycle_folds_into_the_prediction_the_api_shows() -> None:
    events = [_golden_envelope(t, n) for n, t in enumerate(LIFECYCLE, start=1)]
    view = None
    for event in events[:-1]:
        view = apply_event(view, event)
    body = render_prediction(view, "https://cogwheel.example")
    assert (body["status"], body["output"], body["error"]) == ("succeeded", ["Hel", "lo", " world"], None)
    assert body["logs"] == "step 1\nstep 2\n"
    assert body["metrics"]["boot_time"] == 1.5 and body["metrics"]["predict_time"] == 0.98
    assert body["deployment"] == "acme/hello-app" and body["webhook_events_filter"] == ["completed"]
    removed = render_prediction(apply_event(view, events[-1]), "https://cogwheel.example")
    assert (removed["input"], removed["output"], removed["logs"], removed["data_removed"]) == ({}, None, "", True)
    # The scheduler folds the same events into the same prediction.
    state = fold_all(PID, events[:-1])
    assert (state.status, state.output, state.logs, state.waiting_logs) == (
        PredictionStatus.SUCCEEDED, ["Hel", "lo", " world"], "step 1\nstep 2\n", "Queued behind 2 prediction(s)\n")


@pytest.mark.parametrize("ended", ["prediction.failed", "prediction.canceled"])
def test_golden_terminal_events_fold(ended: str) -> None:
    events = [_golden_envelope("prediction.created", 1), _golden_envelope("prediction.started", 2),
              _golden_envelope(ended, 3)]
    state = fold_all(PID, events)
    assert state.is_terminal and state.status == ended.removeprefix("prediction.")
    assert apply_event(apply_event(apply_event(None, events[0]), events[1]), events[2])["status"] == state.status


def _older(name: str) -> Envelope:
    return Envelope.from_json((OLDER / name).read_text())


def test_the_oldest_created_event_folds_with_the_defaults_it_was_written_under() -> None:
    created = _older("prediction.created.v1.oldest.json")
    typed = parse_prediction_event(created)
    assert isinstance(typed, PredictionCreated)
    assert (typed.hardware, typed.source, typed.stream, typed.account) == ("cpu", "api", False, "")
    # What is read is what was stored: no field is added by reading it.
    assert typed.to_data() == created.data
    body = render_prediction(apply_event(None, created), "http://gw")
    assert (body["status"], body["source"], "stream" in body["urls"]) == ("starting", "api", False)


def test_a_cancel_reported_by_the_runner_keeps_its_shape_and_folds() -> None:
    canceled = _older("prediction.canceled.v1.reported-by-runner.json")
    typed = parse_prediction_event(canceled)
    assert isinstance(typed, PredictionCanceled) and typed.reason is None
    assert json.dumps(typed.to_data()) == json.dumps(canceled.data)
    state = fold_all(PID, [_golden_envelope("prediction.created", 1), _golden_envelope("prediction.started", 2),
                           canceled.model_copy(update={"stream_version": 3})])
    assert state.status == PredictionStatus.CANCELED and state.output == ["Hel"]


def test_a_spilled_event_keeps_its_reference_when_parsed() -> None:
    spilled = _older("prediction.succeeded.v1.spilled.json")
    typed = parse_prediction_event(spilled)
    assert typed is not None and typed.to_data() == spilled.data and typed.to_data()["spilled"]


@pytest.mark.parametrize("kind", ["started", "progress", "completed"])
def test_runner_reports_under_their_former_names_are_recorded_like_todays(kind: str) -> None:
    former = _older(f"runner-report.prediction.{kind}.v1.json")
    today = Envelope.from_json(json.dumps(_read(GOLDEN / f"runner.prediction_{kind}.v1.json")[1]))
    assert former.type == f"prediction.{kind}" and former.stream_id == today.stream_id
    assert type(parse_runner_report(former)) is type(parse_runner_report(today))
    assert parse_runner_report(former).to_data() == former.data
    state = fold_all(PID, [_golden_envelope("prediction.created", 1)])
    if kind != "started":
        state = fold_all(PID, [_golden_envelope("prediction.created", 1), _golden_envelope("prediction.started", 2)])

    def decided(report: Envelope) -> list[tuple[str, dict[str, Any]]]:
        events = handlers._decide_for_runner_event(state, parse_runner_report(report), METADATA, None)
        return [(e.type, e.data) for e in events]

    assert decided(former) == decided(today) != []


def test_the_runner_publishes_its_reports_as_the_golden_files_say() -> None:
    result = PredictionResult(status="succeeded", output=["Hel", "lo", " world"], logs="step 1\nstep 2\n", error=None,
                              started_at=datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC),
                              completed_at=datetime(2026, 1, 1, 0, 0, 3, tzinfo=UTC), predict_time=0.98)
    envelope = runner_events.completed(PID, "runner-1", result, None, progress_reports=1, instance_id="inst-1")
    _, golden = _read(GOLDEN / "runner.prediction_completed.v1.json")
    assert (envelope.type, envelope.schema_version) == (golden["type"], golden["schema_version"])
    assert json.dumps(envelope.data) == json.dumps(golden["data"])
    assert runner_events.subject_of(envelope) == "runner.events.prediction.completed"


def test_the_scheduler_records_its_decisions_as_the_golden_files_say() -> None:
    state = fold_all(PID, [_golden_envelope("prediction.created", 1), _golden_envelope("prediction.started", 2),
                           _golden_envelope("prediction.progressed", 3)])
    canceled = model.decide_cancel(state, completed_at="2026-01-01T00:00:30+00:00", metadata=METADATA,
                                   reason="deadline")
    _, golden = _read(GOLDEN / "prediction.canceled.v1.json")
    # The started event of the golden lifecycle carried a boot time: the cancel repeats it.
    assert json.dumps(canceled[0].data) == json.dumps({**golden["data"], "boot_time": 1.5})
    assert canceled[0].stream_id == golden["stream_id"]
