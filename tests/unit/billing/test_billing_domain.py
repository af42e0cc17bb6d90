"""Billing's pure rules: what a usage record holds."""

from services.billing.domain.usage import BilledPrediction, prediction_id_of, usage_recorded, usage_stream

CREATED = {
    "id": "p1",
    "model": "alice/hello",
    "version": "v" * 64,
    "input": {"text": "x"},
    "account": "alice",
    "hardware": "cpu",
    "created_at": "2026-01-01T00:00:00+00:00",
}


def test_usage_record_combines_created_facts_with_the_terminal_event() -> None:
    prediction = BilledPrediction.from_created(CREATED)
    usage = usage_recorded(
        prediction, {"id": "p1", "predict_time": 1.25, "completed_at": "2026-01-01T00:00:02+00:00"}, "ignored"
    )
    assert usage == {
        "prediction_id": "p1",
        "account": "alice",
        "model": "alice/hello",
        "version": "v" * 64,
        "hardware": "cpu",
        "predict_time": 1.25,
        "completed_at": "2026-01-01T00:00:02+00:00",
    }


def test_canceled_before_running_bills_zero_and_falls_back_on_the_event_time() -> None:
    prediction = BilledPrediction.from_created(CREATED)
    usage = usage_recorded(prediction, {"id": "p1", "predict_time": None}, "2026-01-01T00:00:09+00:00")
    assert usage["predict_time"] == 0.0
    assert usage["completed_at"] == "2026-01-01T00:00:09+00:00"


def test_stream_and_id_helpers() -> None:
    assert usage_stream("p1") == "usage-p1"
    assert prediction_id_of("prediction-p9", {}) == "p9"
    assert prediction_id_of("prediction-p9", {"id": "p1"}) == "p1"
