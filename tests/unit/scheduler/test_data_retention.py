"""Data retention in the prediction aggregate, and which bytes a removal deletes."""

from datetime import UTC, datetime

from libs.blobs import output_ref
from libs.events import EventMetadata
from services.scheduler.adapters.prediction_data import output_keys, uploaded_file_ids
from services.scheduler.domain import prediction as model


def _ended(source: str = "api") -> model.Prediction:
    events = model.decide_create(
        "p1", model="a/b", version_id="v", hardware="cpu", input={"prompt": "hi"}, account="acct",
        created_at=datetime(2026, 1, 1, tzinfo=UTC), webhook=None, webhook_events_filter=None, source=source,
        metadata=EventMetadata(),
    )
    state = model.load("p1", events)
    done = model.decide_complete(
        state, status="succeeded", output=[output_ref("p1/0-a.png")], logs="log\n", error=None,
        started_at="2026-01-01T00:00:00+00:00", completed_at="2026-01-01T00:00:01+00:00", predict_time=1.0,
        runner_id="r", metadata=EventMetadata(),
    )
    for event in done:
        state = model.evolve(state, event.model_copy(update={"stream_version": state.stream_version + 1}))
    return state


def test_removing_data_of_an_ended_api_prediction() -> None:
    state = _ended()
    events = model.decide_remove_data(state, removed_at="2026-01-01T01:00:01+00:00", metadata=EventMetadata())
    assert [e.type for e in events] == ["prediction.data_removed"]
    removed = model.evolve(state, events[0].model_copy(update={"stream_version": state.stream_version + 1}))
    assert (removed.input, removed.output, removed.logs, removed.data_removed) == ({}, None, "", True)
    assert removed.status == "succeeded"
    # Once is enough.
    assert model.decide_remove_data(removed, removed_at="x", metadata=EventMetadata()) == []


def test_web_and_unfinished_predictions_keep_their_data() -> None:
    assert model.decide_remove_data(_ended(source="web"), removed_at="x", metadata=EventMetadata()) == []
    running = model.load("p1", model.decide_create(
        "p1", model="a/b", version_id="v", hardware="cpu", input={}, account="acct",
        created_at=datetime(2026, 1, 1, tzinfo=UTC), webhook=None, webhook_events_filter=None, source="api",
        metadata=EventMetadata(),
    ))
    assert model.decide_remove_data(running, removed_at="x", metadata=EventMetadata()) == []


def test_output_files_and_uploaded_inputs_are_found_at_any_depth() -> None:
    output = {"image": output_ref("p1/0-a.png"), "more": [output_ref("p1/1-b.txt"), "plain text"]}
    assert output_keys(output) == ["p1/0-a.png", "p1/1-b.txt"]
    given = {"doc": "https://gw.example/v1/files/abc123", "docs": ["https://gw.example/v1/files/def/download?x=1"],
             "elsewhere": "https://other.example/v1/files/zzz", "text": "/v1/files/not-a-url"}
    assert uploaded_file_ids(given, "https://gw.example") == ["abc123", "def"]
