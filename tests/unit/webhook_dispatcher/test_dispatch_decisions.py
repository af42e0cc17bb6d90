"""Which webhook a lifecycle event triggers, the filter, ordering and the retry policy."""

import pytest

from services.webhook_dispatcher.domain.decisions import (
    DeliveryPlan,
    filter_allows,
    plan_delivery,
    webhook_event_for,
)
from services.webhook_dispatcher.domain.ordering import Placement, place
from services.webhook_dispatcher.domain.retries import backoff, should_retry, succeeded


@pytest.mark.parametrize(
    ("event_type", "webhook_event"),
    [
        ("prediction.created", "start"),
        ("prediction.started", None),
        ("prediction.succeeded", "completed"),
        ("prediction.failed", "completed"),
        ("prediction.canceled", "completed"),
        ("prediction.something_new", None),
    ],
)
def test_webhook_event_for(event_type: str, webhook_event: str | None) -> None:
    assert webhook_event_for(event_type) == webhook_event


@pytest.mark.parametrize(
    ("events_filter", "allowed"),
    [
        (None, {"start", "output", "logs", "completed"}),
        ([], {"start", "output", "logs", "completed"}),
        (["completed"], {"completed"}),
        (["start", "logs"], {"start", "logs"}),
    ],
)
def test_filter_allows(events_filter: list[str] | None, allowed: set[str]) -> None:
    for webhook_event in ("start", "output", "logs", "completed"):
        assert filter_allows(webhook_event, events_filter) == (webhook_event in allowed)


def test_plan_delivery_needs_a_webhook_and_a_passing_filter() -> None:
    view = {"webhook": "https://example.test/hook", "webhook_events_filter": ["completed"]}
    assert plan_delivery(view, "prediction.created") is None
    assert plan_delivery(view, "prediction.succeeded") == DeliveryPlan(
        webhook_event="completed", url="https://example.test/hook"
    )
    assert plan_delivery({"webhook": None}, "prediction.succeeded") is None
    assert plan_delivery({"webhook": "https://example.test/hook"}, "prediction.created") == DeliveryPlan(
        webhook_event="start", url="https://example.test/hook"
    )


@pytest.mark.parametrize(
    ("event_type", "version", "stored", "placement"),
    [
        ("prediction.created", 1, None, Placement.APPLY),
        ("prediction.created", 1, 1, Placement.ALREADY_APPLIED),
        ("prediction.started", 2, None, Placement.GAP),
        ("prediction.started", 2, 1, Placement.APPLY),
        ("prediction.succeeded", 3, 1, Placement.GAP),
        ("prediction.started", 2, 3, Placement.ALREADY_APPLIED),
        ("prediction.succeeded", 3, 3, Placement.ALREADY_APPLIED),
    ],
)
def test_place(event_type: str, version: int, stored: int | None, placement: Placement) -> None:
    assert place(event_type, version, stored) is placement


def test_only_completed_is_retried_on_connection_errors_and_5xx_three_times() -> None:
    assert should_retry("completed", 1, None, "ConnectError")
    assert should_retry("completed", 3, 503, None)
    assert not should_retry("completed", 4, 503, None)
    assert not should_retry("completed", 1, 404, None)
    assert not should_retry("completed", 1, 200, None)
    assert not should_retry("start", 1, None, "ConnectError")
    assert [backoff(n) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]


def test_only_2xx_counts_as_delivered() -> None:
    assert succeeded(204, None)
    assert not succeeded(301, None)
    assert not succeeded(None, "ReadTimeout")
