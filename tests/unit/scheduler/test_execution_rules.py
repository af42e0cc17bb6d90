"""Secret redaction, stream detection, progress ordering and deadline cancels in the prediction aggregate."""

from datetime import UTC, datetime

import pytest

from libs.events import EventMetadata
from services.scheduler.domain import prediction as model
from services.scheduler.domain.schema import REDACTED, redact, secret_inputs, streams_output

SCHEMA = {
    "components": {
        "schemas": {
            "Input": {"properties": {
                "prompt": {"type": "string"},
                "api_key": {"type": "string", "format": "password", "writeOnly": True, "x-cog-secret": True},
                "keys": {"type": "array", "items": {"type": "string", "format": "password", "x-cog-secret": True}},
            }},
            "Output": {"type": "array", "items": {"type": "string"}, "x-cog-array-type": "iterator"},
        }
    }
}


def test_secret_inputs_and_streaming_come_from_the_schema() -> None:
    assert secret_inputs(SCHEMA) == {"api_key", "keys"}
    assert streams_output(SCHEMA)
    assert not streams_output({"components": {"schemas": {"Output": {"type": "array"}}}})
    assert secret_inputs({}) == frozenset() and not streams_output({})


def test_redaction_masks_only_secrets() -> None:
    redacted = redact({"prompt": "hi", "api_key": "k", "keys": ["a", "b"], "other": None}, secret_inputs(SCHEMA))
    assert redacted == {"prompt": "hi", "api_key": REDACTED, "keys": [REDACTED, REDACTED], "other": None}


def _created(**extra: object) -> model.Prediction:
    events = model.decide_create(
        "p1", model="a/b", version_id="v", hardware="cpu", input={}, account="acct",
        created_at=datetime(2026, 1, 1, tzinfo=UTC), webhook=None, webhook_events_filter=None, source="api",
        metadata=EventMetadata(), **extra,
    )
    return model.load("p1", events)


def _apply(state: model.Prediction, events: list) -> model.Prediction:
    for event in events:
        state = model.evolve(state, event.model_copy(update={"stream_version": state.stream_version + 1}))
    return state


def test_progress_is_folded_in_order_and_duplicates_are_ignored() -> None:
    state = _created(stream=True)
    assert state.stream
    with pytest.raises(model.ProgressOutOfOrder):  # before the start
        model.decide_progress(state, seq=1, output_items=["a"], logs="", metadata=EventMetadata())
    state = _apply(state, model.decide_start(state, started_at="t", runner_id="r", metadata=EventMetadata()))
    with pytest.raises(model.ProgressOutOfOrder):
        model.decide_progress(state, seq=2, output_items=["b"], logs="", metadata=EventMetadata())
    state = _apply(state, model.decide_progress(state, seq=1, output_items=["a"], logs="x\n",
                                                metadata=EventMetadata()))
    state = _apply(state, model.decide_progress(state, seq=2, output_items=["b"], logs="", metadata=EventMetadata()))
    assert model.decide_progress(state, seq=2, output_items=["b"], logs="", metadata=EventMetadata()) == []
    assert (state.output, state.logs, state.progress_seq, state.status) == (["a", "b"], "x\n", 2, "processing")


def test_deadline_cancel_keeps_partial_output_and_says_why() -> None:
    state = _created(deadline=datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC))
    assert state.deadline == "2026-01-01T00:00:05+00:00"
    (event,) = model.decide_cancel(state, completed_at="t", metadata=EventMetadata(), reason="deadline")
    assert event.type == "prediction.canceled" and event.data["reason"] == "deadline"
    assert model.decide_progress(_apply(state, [event]), seq=1, output_items=["late"], logs="",
                                 metadata=EventMetadata()) == []
