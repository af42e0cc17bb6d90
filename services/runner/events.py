"""The runner's reports to the scheduler, as event envelopes on `runner.events.prediction.<kind>`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from libs.blobs import spill_large_fields
from libs.events import Envelope, EventMetadata
from services.runner.adapters.supervisor import PredictionResult

_ID_NAMESPACE = uuid.UUID("6f1c3c5e-2b7a-4d53-9a43-0c1f6e2b9a10")


# Report fields that may be too large for one NATS message; they then travel by reference (libs.blobs.spill).
LARGE_FIELDS = ("output", "output_items", "logs", "error")


async def fitting(js: Any, envelope: Envelope) -> Envelope:
    """The report as published: its large values stored by reference when it would not fit in a NATS message."""
    data = await spill_large_fields(
        js, envelope.data, key=f"{envelope.data['prediction_id']}/{envelope.id}", fields=LARGE_FIELDS
    )
    return envelope if data is envelope.data else envelope.model_copy(update={"data": data})


def subject(kind: str) -> str:
    return f"runner.events.prediction.{kind}"


def runner_event(
    kind: str, prediction_id: str, data: dict[str, Any], traceparent: str | None, *, version: int, key: str = ""
) -> Envelope:
    """Event ids derive from prediction, kind and (for progress) sequence number, so a redelivered job's
    re-publish is de-duplicated by JetStream and by the scheduler's tracking."""
    return Envelope(
        id=str(uuid.uuid5(_ID_NAMESPACE, f"{prediction_id}:{kind}{key}")),
        type=f"prediction.{kind}",
        stream_id=f"runner-prediction-{prediction_id}",
        stream_version=version,
        data={"prediction_id": prediction_id, **data},
        metadata=EventMetadata(correlation_id=prediction_id, traceparent=traceparent),
    )


def started(
    prediction_id: str, runner_id: str, started_at: datetime, traceparent: str | None, *, instance_id: str | None = None,
    instance_ready_at: datetime | None = None,
) -> Envelope:
    """``instance_ready_at``: when the instance that runs it became ready (the scheduler derives boot time)."""
    data = {"runner_id": runner_id, "started_at": started_at.isoformat()}
    if instance_id:
        data["instance_id"] = instance_id
    if instance_ready_at is not None:
        data["instance_ready_at"] = instance_ready_at.isoformat()
    # A job run again on another instance (its first run was lost) is a start of its own: the scheduler sees
    # it, fails the prediction naming the lost node and stops that second run.
    return runner_event("started", prediction_id, data, traceparent, version=1,
                        key=f":{instance_id}" if instance_id else "")


def progress(
    prediction_id: str, runner_id: str, seq: int, output_items: list[Any], logs: str, traceparent: str | None
) -> Envelope:
    """Iterator items and log text produced since report ``seq - 1`` (sequence numbers start at 1)."""
    data = {"runner_id": runner_id, "seq": seq, "output_items": output_items, "logs": logs}
    return runner_event("progress", prediction_id, data, traceparent, version=1 + seq, key=f":{seq}")


def completed(
    prediction_id: str, runner_id: str, result: PredictionResult, traceparent: str | None, *, progress_reports: int = 0,
    instance_id: str | None = None,
) -> Envelope:
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
    if instance_id:
        data["instance_id"] = instance_id
    return runner_event("completed", prediction_id, data, traceparent, version=2 + progress_reports)


def instance_subject(kind: str) -> str:
    return f"runner.events.instance.{kind}"


def instance_report(kind: str, instance_id: str, runner_id: str, at: datetime, **fields: Any) -> Envelope:
    """A report on an instance (`booting` with its phase, `ready`, `stopped`, `failed`); the id derives from
    instance, kind and phase, so a repeated report is dropped."""
    phase = fields.get("phase") or ""
    return Envelope(
        id=str(uuid.uuid5(_ID_NAMESPACE, f"instance:{instance_id}:{kind}:{phase}")),
        type=f"instance.{kind}",
        stream_id=f"runner-instance-{instance_id}",
        stream_version=1,
        data={"instance_id": instance_id, "runner_id": runner_id, "at": at.isoformat(), **fields},
        metadata=EventMetadata(correlation_id=instance_id),
    )
