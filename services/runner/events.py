"""The runner's reports to the scheduler, as event envelopes on `runner.events.prediction.<kind>`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from libs.events import Envelope, EventMetadata
from services.runner.adapters.supervisor import PredictionResult

_STREAM_VERSION = {"started": 1, "completed": 2}
_ID_NAMESPACE = uuid.UUID("6f1c3c5e-2b7a-4d53-9a43-0c1f6e2b9a10")


def subject(kind: str) -> str:
    return f"runner.events.prediction.{kind}"


def runner_event(kind: str, prediction_id: str, data: dict[str, Any], traceparent: str | None) -> Envelope:
    """Event ids derive from prediction and kind, so a redelivered job's re-publish is de-duplicated."""
    return Envelope(
        id=str(uuid.uuid5(_ID_NAMESPACE, f"{prediction_id}:{kind}")),
        type=f"prediction.{kind}",
        stream_id=f"runner-prediction-{prediction_id}",
        stream_version=_STREAM_VERSION[kind],
        data={"prediction_id": prediction_id, **data},
        metadata=EventMetadata(correlation_id=prediction_id, traceparent=traceparent),
    )


def started(prediction_id: str, runner_id: str, started_at: datetime, traceparent: str | None) -> Envelope:
    return runner_event(
        "started", prediction_id, {"runner_id": runner_id, "started_at": started_at.isoformat()}, traceparent
    )


def completed(prediction_id: str, runner_id: str, result: PredictionResult, traceparent: str | None) -> Envelope:
    data = {
        "runner_id": runner_id,
        "status": result.status,
        "output": result.output,
        "logs": result.logs,
        "error": result.error,
        "started_at": result.started_at.isoformat(),
        "completed_at": result.completed_at.isoformat(),
        "predict_time": result.predict_time,
    }
    return runner_event("completed", prediction_id, data, traceparent)
