"""A prediction is never run twice: a second run of a started prediction is told apart from a repeated report,
and the prediction fails naming the node that was lost."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.events import EventMetadata
from services.scheduler.domain import prediction as model

META = EventMetadata(correlation_id="p")
STARTED_AT = "2026-01-01T00:00:05+00:00"


def _fold(events: list) -> model.Prediction:
    return model.load("p", [e.model_copy(update={"stream_version": n}) for n, e in enumerate(events, start=1)])


def _started_on(node: str, instance: str | None) -> list:
    events = model.decide_create("p", model="o/m", version_id="v", hardware="cpu", input={}, account="a",
                                 created_at=datetime(2026, 1, 1, tzinfo=UTC), webhook=None,
                                 webhook_events_filter=None, source="api", metadata=META)
    events += model.decide_wait(_fold(events), logs="Queued behind 1 prediction(s)\n", metadata=META)
    return events + model.decide_start(_fold(events), started_at=STARTED_AT, runner_id=node, metadata=META,
                                       instance_id=instance)


def test_the_start_records_its_node_and_instance() -> None:
    state = _fold(_started_on("runner-1", "i-1"))
    assert (state.status, state.runner_id, state.instance_id) == ("processing", "runner-1", "i-1")


def test_a_repeated_report_of_the_recorded_start_is_not_a_second_run() -> None:
    state = _fold(_started_on("runner-1", "i-1"))
    assert not model.is_second_run(state, started_at=STARTED_AT, runner_id="runner-1", instance_id="i-1")
    # A completion carries predict()'s own start time: node and instance decide.
    assert not model.is_second_run(state, started_at=None, runner_id="runner-1", instance_id="i-1")


def test_a_start_elsewhere_or_later_is_a_second_run() -> None:
    state = _fold(_started_on("runner-1", "i-1"))
    assert model.is_second_run(state, started_at="2026-01-01T00:00:30+00:00", runner_id="runner-2", instance_id="i-2")
    assert model.is_second_run(state, started_at=None, runner_id="runner-1", instance_id="i-9")
    # The same node restarted (same id, no instance on the shared path) starts it again later.
    shared = _fold(_started_on("runner-1", None))
    assert model.is_second_run(shared, started_at="2026-01-01T00:00:40+00:00", runner_id="runner-1", instance_id=None)
    assert not model.is_second_run(shared, started_at=STARTED_AT, runner_id="runner-1", instance_id=None)


def test_only_a_started_prediction_can_be_run_twice() -> None:
    waiting = _started_on("runner-1", "i-1")[:-1]
    assert not model.is_second_run(_fold(waiting), started_at=STARTED_AT, runner_id="runner-2", instance_id="i-2")
    events = _started_on("runner-1", "i-1")
    events += model.decide_lost(_fold(events), node="runner-1", completed_at="2026-01-01T00:01:00+00:00",
                                metadata=META)
    assert not model.is_second_run(_fold(events), started_at="t", runner_id="runner-2", instance_id="i-2")


def test_a_lost_prediction_fails_naming_the_node_and_keeps_what_it_logged() -> None:
    state = _fold(_started_on("runner-1", "i-1"))
    (event,) = model.decide_lost(state, node="runner-1", completed_at="2026-01-01T00:01:00+00:00", metadata=META,
                                 why=" (it stopped sending heartbeats)")
    assert event.type == "prediction.failed"
    assert event.data["error"] == ("The node runner-1 running this prediction was lost (it stopped sending "
                                   "heartbeats); it is not run again")
    assert event.data["started_at"] == STARTED_AT and event.data["logs"] == "Queued behind 1 prediction(s)\n"
    ended = _fold(_started_on("runner-1", "i-1") + [event])
    assert model.decide_lost(ended, node="runner-1", completed_at="later", metadata=META) == []
