"""A starting prediction's waiting lines: in its logs while it waits, kept at their head once it ends."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.events import EventMetadata
from libs.predictions import apply_event, render_prediction
from services.scheduler.domain import prediction as model

META = EventMetadata(correlation_id="p")


def _fold(events: list) -> model.Prediction:
    return model.load("p", [e.model_copy(update={"stream_version": n}) for n, e in enumerate(events, start=1)])


def _created() -> list:
    return model.decide_create("p", model="o/m", version_id="v", hardware="cpu", input={}, account="a",
                               created_at=datetime(2026, 1, 1, tzinfo=UTC), webhook=None, webhook_events_filter=None,
                               source="api", metadata=META)


def test_waiting_lines_stay_at_the_head_of_the_logs() -> None:
    events = _created()
    events += model.decide_wait(_fold(events), logs="cold boot\n", metadata=META)
    events += model.decide_wait(_fold(events), logs="Booting: running setup()\n", metadata=META)
    state = _fold(events)
    assert (state.status, state.logs) == ("starting", "cold boot\nBooting: running setup()\n")
    events += model.decide_start(state, started_at="2026-01-01T00:00:05+00:00", runner_id="n1", metadata=META,
                                 instance_id="i-1", boot_time=4.0)
    assert model.decide_wait(_fold(events), logs="late\n", metadata=META) == []
    events += model.decide_complete(_fold(events), status="succeeded", output="x", logs="model says hi\n", error=None,
                                    started_at="2026-01-01T00:00:05+00:00", completed_at="2026-01-01T00:00:06+00:00",
                                    predict_time=1.0, runner_id="n1", metadata=META)
    assert _fold(events).logs == "cold boot\nBooting: running setup()\nmodel says hi\n"

    view = None
    for n, event in enumerate(events, start=1):
        view = apply_event(view, event.model_copy(update={"stream_version": n}))
    body = render_prediction(view, "https://example.test")
    assert body["logs"] == "cold boot\nBooting: running setup()\nmodel says hi\n"
    assert body["metrics"] == {"predict_time": 1.0, "total_time": 6.0, "queue_time": 5.0, "boot_time": 4.0}
