"""Which webhook a lifecycle event triggers, the filter, ordering, the retry decision and signing."""

import base64

import pytest
from replicate.webhook import Webhooks, WebhookSigningSecret
from standardwebhooks import Webhook, WebhookVerificationError

from services.webhook_dispatcher.domain.decisions import (
    DeliveryPlan,
    filter_allows,
    plan_delivery,
    webhook_events_for,
)
from services.webhook_dispatcher.domain.destinations import (
    DestinationRefused,
    check_addresses,
    is_allowed,
    parse_networks,
)
from services.webhook_dispatcher.domain.ordering import Placement, place
from services.webhook_dispatcher.domain.retries import Outcome, RetryPolicy, decide, retryable, succeeded
from services.webhook_dispatcher.domain.signing import new_secret, signature, signed_headers, webhook_id


@pytest.mark.parametrize(
    ("event_type", "data", "webhook_events"),
    [
        ("prediction.created", {}, ["start"]),
        ("prediction.started", {}, []),
        ("prediction.succeeded", {}, ["completed"]),
        ("prediction.failed", {}, ["completed"]),
        ("prediction.canceled", {}, ["completed"]),
        ("prediction.progressed", {"output_items": ["a"], "logs": "x"}, ["output", "logs"]),
        ("prediction.progressed", {"output_items": [], "logs": "x"}, ["logs"]),
        ("prediction.progressed", {"output_items": ["a"], "logs": ""}, ["output"]),
        ("prediction.progressed", {"output_items": [], "logs": ""}, []),
        ("prediction.something_new", {}, []),
    ],
)
def test_webhook_events_for(event_type: str, data: dict, webhook_events: list[str]) -> None:
    assert webhook_events_for(event_type, data) == webhook_events


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
    hook = "https://example.test/hook"
    view = {"webhook": hook, "webhook_events_filter": ["completed"], "status": "starting"}
    assert plan_delivery(view, "prediction.created", {}) is None
    assert plan_delivery(view, "prediction.succeeded", {}) == DeliveryPlan(webhook_event="completed", url=hook)
    assert plan_delivery({"webhook": None}, "prediction.succeeded", {}) is None
    assert plan_delivery({"webhook": hook}, "prediction.created", {}) == DeliveryPlan(webhook_event="start", url=hook)
    both = {"output_items": ["a"], "logs": "x"}
    progress = {"webhook": hook, "status": "processing", "webhook_events_filter": ["logs"]}
    assert plan_delivery(progress, "prediction.progressed", both) == DeliveryPlan(webhook_event="logs", url=hook)
    unfiltered = plan_delivery({**progress, "webhook_events_filter": None}, "prediction.progressed", both)
    assert unfiltered.webhook_event == "output"
    assert plan_delivery({**progress, "status": "succeeded"}, "prediction.progressed", both) is None


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


def test_which_answers_are_retried() -> None:
    assert retryable(None, "ConnectError")
    assert retryable(None, "ReadTimeout")
    assert retryable(500, None) and retryable(503, None) and retryable(429, None)
    assert not retryable(404, None) and not retryable(400, None) and not retryable(301, None)
    assert not retryable(None, "refused: 10.0.0.1", refused=True)
    assert succeeded(204, None)
    assert not succeeded(301, None)
    assert not succeeded(None, "ReadTimeout")


def test_decide() -> None:
    policy = RetryPolicy(window_seconds=60.0, base_seconds=1.0)
    assert decide("completed", 1, 0.0, 200, None, policy) == (Outcome.DELIVERED, None)
    outcome, delay = decide("completed", 1, 0.0, 503, None, policy)
    assert outcome is Outcome.RETRYING and 0.5 <= delay <= 1.0
    assert decide("completed", 9, 60.1, 503, None, policy) == (Outcome.FAILED, None)
    assert decide("completed", 1, 0.0, 404, None, policy) == (Outcome.FAILED, None)
    assert decide("start", 1, 0.0, 503, None, policy) == (Outcome.FAILED, None)
    assert decide("logs", 1, 0.0, None, "ConnectError", policy) == (Outcome.FAILED, None)


def test_signature_matches_the_replicate_client_test_vector() -> None:
    key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    sig = signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_new_secrets_verify_with_standardwebhooks_and_the_replicate_client() -> None:
    import time

    key = new_secret()
    assert key.startswith("whsec_") and key.count("_") == 1
    assert len(base64.b64decode(key.removeprefix("whsec_"))) == 32
    body = b'{"id": "p1", "status": "succeeded"}'
    headers = signed_headers(key, webhook_id("0b9c6a4e-1111-2222-3333-444455556666"), int(time.time()), body)
    assert headers["webhook-id"] == "msg_0b9c6a4e111122223333444455556666"
    assert Webhook(key).verify(body, headers) == {"id": "p1", "status": "succeeded"}
    secret = WebhookSigningSecret(key=key)
    assert Webhooks.validate(headers=headers, body=body.decode(), secret=secret, tolerance=60) is None
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers)


@pytest.mark.parametrize(
    ("address", "public_only", "with_loopback"),
    [
        ("8.8.8.8", True, True),
        ("2606:4700::1111", True, True),
        ("127.0.0.1", False, True),
        ("::1", False, True),
        ("10.1.2.3", False, False),
        ("172.16.0.1", False, False),
        ("192.168.1.1", False, False),
        ("169.254.169.254", False, False),
        ("fe80::1", False, False),
        ("fc00::1", False, False),
        ("100.64.0.1", False, False),
        ("0.0.0.0", False, False),
        ("224.0.0.1", False, False),
        ("::ffff:127.0.0.1", False, True),
        ("::ffff:10.0.0.1", False, False),
    ],
)
def test_destinations(address: str, public_only: bool, with_loopback: bool) -> None:
    assert is_allowed(address) is public_only
    assert is_allowed(address, parse_networks("127.0.0.0/8, ::1/128")) is with_loopback


def test_one_private_answer_is_enough_to_refuse() -> None:
    check_addresses("example.test", ["8.8.8.8"])
    with pytest.raises(DestinationRefused, match="10.0.0.1"):
        check_addresses("example.test", ["8.8.8.8", "10.0.0.1"])
    with pytest.raises(DestinationRefused):
        check_addresses("example.test", [])
