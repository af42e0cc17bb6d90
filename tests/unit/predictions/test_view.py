"""The shared prediction fold: lifecycle and progress events into the Replicate-shaped view."""

from typing import Any

from libs.blobs import output_ref
from libs.events import Envelope, EventMetadata
from libs.predictions import apply_event, fold_all, render_prediction


def _event(kind: str, seq: int, **data: Any) -> Envelope:
    return Envelope(id=f"e{seq}", type=f"prediction.{kind}", stream_id="prediction-p1", stream_version=seq,
                    data={"id": "p1", **data}, metadata=EventMetadata())


CREATED = _event("created", 1, model="acme/gen", version="v1", input={"prompt": "hi"},
                 created_at="2026-01-01T00:00:00+00:00")


def test_progress_appends_output_items_and_logs_and_marks_processing() -> None:
    view = apply_event(None, CREATED)
    view = apply_event(view, _event("progressed", 2, output_items=["Hel", "lo"], logs="step 1\n"))
    view = apply_event(view, _event("progressed", 3, output_items=[" world"], logs="step 2\n"))
    assert view["status"] == "processing"
    assert view["output"] == ["Hel", "lo", " world"]
    assert view["logs"] == "step 1\nstep 2\n"


def test_progress_after_the_terminal_event_changes_nothing_but_the_version() -> None:
    view = apply_event(None, CREATED)
    view = apply_event(view, _event("succeeded", 2, output=["done"], logs="all\n",
                                    completed_at="2026-01-01T00:00:01+00:00"))
    late = apply_event(view, _event("progressed", 3, output_items=["late"], logs="late\n"))
    assert (late["output"], late["logs"], late["status"]) == (["done"], "all\n", "succeeded")


def test_rendered_output_files_are_absolute_urls_on_the_renderers_origin() -> None:
    view = apply_event(None, CREATED)
    view = apply_event(view, _event("succeeded", 2, output=[output_ref("p1/0-out.png")],
                                    completed_at="2026-01-01T00:00:01+00:00"))
    body = render_prediction(view, "http://gw.example:8000")
    assert body["output"] == ["http://gw.example:8000/v1/outputs/p1/0-out.png"]
    assert body["urls"]["get"] == "http://gw.example:8000/v1/predictions/p1"


def test_stream_url_only_for_streaming_predictions_and_deadline_shown() -> None:
    plain = render_prediction(apply_event(None, CREATED), "http://gw")
    assert "stream" not in plain["urls"] and "deadline" not in plain
    streaming = _event("created", 1, model="acme/gen", version="v1", input={}, stream=True,
                       deadline="2026-01-01T00:00:30+00:00", created_at="2026-01-01T00:00:00+00:00")
    body = render_prediction(apply_event(None, streaming), "http://gw/")
    assert body["urls"]["stream"] == "http://gw/v1/predictions/p1/stream"
    assert body["deadline"] == "2026-01-01T00:00:30Z"
    tokened = _event("created", 1, model="acme/gen", version="v1", input={}, stream=True, stream_token="s3cret",
                     created_at="2026-01-01T00:00:00+00:00")
    body = render_prediction(apply_event(None, tokened), "http://gw/")
    assert body["urls"]["stream"] == "http://gw/v1/predictions/p1/stream?token=s3cret"
    assert all("s3cret" not in url for name, url in body["urls"].items() if name != "stream")


def test_deployment_is_shown_only_for_predictions_made_through_one() -> None:
    assert "deployment" not in render_prediction(apply_event(None, CREATED), "http://gw")
    through = _event("created", 1, model="acme/gen", version="v1", input={}, deployment="acme/my-app",
                     created_at="2026-01-01T00:00:00+00:00")
    view = apply_event(None, through)
    view = apply_event(view, _event("succeeded", 2, output="ok", completed_at="2026-01-01T00:00:01+00:00"))
    assert render_prediction(view, "http://gw")["deployment"] == "acme/my-app"


def test_data_removed_empties_input_output_and_logs_and_is_shown() -> None:
    view = apply_event(None, CREATED)
    view = apply_event(view, _event("succeeded", 2, output=[output_ref("p1/0-out.png")], logs="all\n",
                                    completed_at="2026-01-01T00:00:01+00:00"))
    assert render_prediction(view, "http://gw")["data_removed"] is False
    view = apply_event(view, _event("data_removed", 3, removed_at="2026-01-01T01:00:01+00:00"))
    body = render_prediction(view, "http://gw")
    assert (body["input"], body["output"], body["logs"], body["data_removed"]) == ({}, None, "", True)
    assert (body["status"], body["completed_at"]) == ("succeeded", "2026-01-01T00:00:01Z")


def test_a_failure_without_output_keeps_what_was_streamed_and_empty_logs_empty_them() -> None:
    view = apply_event(None, CREATED)
    view = apply_event(view, _event("progressed", 2, output_items=["Hel"], logs="step 1\n"))
    failed = apply_event(view, _event("failed", 3, output=None, logs="", error="lost",
                                      completed_at="2026-01-01T00:00:01+00:00"))
    assert (failed["status"], failed["output"], failed["logs"], failed["error"]) == ("failed", ["Hel"], "", "lost")


def test_the_scheduler_state_and_the_read_models_view_are_one_fold() -> None:
    events = [CREATED, _event("waiting", 2, logs="Queued behind 1 prediction(s)\n"),
              _event("started", 3, started_at="2026-01-01T00:00:01+00:00", runner_id="r", boot_time=0.5),
              _event("progressed", 4, output_items=["a"], logs="x\n"),
              _event("succeeded", 5, output=["a"], logs="Queued behind 1 prediction(s)\nx\n", error=None,
                     completed_at="2026-01-01T00:00:02+00:00", predict_time=1.0, boot_time=0.5)]
    view = None
    for event in events:
        view = apply_event(view, event)
    state = fold_all("p1", events)
    assert state.to_view() == view
    assert state.waiting_logs == "Queued behind 1 prediction(s)\n"
    assert render_prediction(view, "http://gw")["metrics"]["boot_time"] == 0.5
