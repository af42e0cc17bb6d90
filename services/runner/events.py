"""The runner's reports to the scheduler, as event envelopes on `runner.events.prediction.<kind>`.

Their data and type names are the contract of `libs.predictions.events` (`runner.prediction_started`, ...).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from libs.blobs import spill_large_fields
from libs.bus.subjects import runner_instance_report_subject, runner_prediction_report_subject
from libs.events import Envelope, EventMetadata
from libs.predictions import (
    RunnerPredictionCompleted,
    RunnerPredictionProgress,
    RunnerPredictionStarted,
    RunnerReport,
    runner_report_class,
)
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
    return runner_prediction_report_subject(kind)


def subject_of(report: Envelope) -> str:
    """The subject a prediction report travels on: `runner.events.prediction.<kind>`, whatever its type name."""
    cls = runner_report_class(report.type)
    return subject(cls.KIND if cls is not None else report.type.rsplit(".", 1)[-1])


def runner_event(report: RunnerReport, traceparent: str | None, *, version: int, key: str = "") -> Envelope:
    """The report in its envelope. Event ids derive from prediction, kind and (for progress) sequence number,
    so a redelivered job's re-publish is de-duplicated by JetStream and by the scheduler's tracking (the
    kind, not the type name, seeds the id: reports keep their ids across the rename of their types)."""
    return Envelope(
        id=str(uuid.uuid5(_ID_NAMESPACE, f"{report.prediction_id}:{report.KIND}{key}")),
        type=report.TYPE,
        schema_version=report.SCHEMA_VERSION,
        stream_id=f"runner-prediction-{report.prediction_id}",
        stream_version=version,
        data=report.to_data(),
        metadata=EventMetadata(correlation_id=report.prediction_id, traceparent=traceparent),
    )


def started(
    prediction_id: str, runner_id: str, started_at: datetime, traceparent: str | None, *,
    instance_id: str | None = None,
    instance_ready_at: datetime | None = None,
) -> Envelope:
    """``instance_ready_at``: when the instance that runs it became ready (the scheduler derives boot time)."""
    optional: dict[str, Any] = {}
    if instance_id:
        optional["instance_id"] = instance_id
    if instance_ready_at is not None:
        optional["instance_ready_at"] = instance_ready_at.isoformat()
    report = RunnerPredictionStarted(prediction_id=prediction_id, runner_id=runner_id,
                                     started_at=started_at.isoformat(), **optional)
    # A job run again on another instance (its first run was lost) is a start of its own: the scheduler sees
    # it, fails the prediction naming the lost node and stops that second run.
    return runner_event(report, traceparent, version=1, key=f":{instance_id}" if instance_id else "")


def progress(
    prediction_id: str, runner_id: str, seq: int, output_items: list[Any], logs: str, traceparent: str | None
) -> Envelope:
    """Iterator items and log text produced since report ``seq - 1`` (sequence numbers start at 1)."""
    report = RunnerPredictionProgress(prediction_id=prediction_id, runner_id=runner_id, seq=seq,
                                      output_items=output_items, logs=logs)
    return runner_event(report, traceparent, version=1 + seq, key=f":{seq}")


def completed(
    prediction_id: str, runner_id: str, result: PredictionResult, traceparent: str | None, *, progress_reports: int = 0,
    instance_id: str | None = None,
    instance_ready_at: datetime | None = None,
) -> Envelope:
    """``instance_ready_at`` as in `started`: a completion whose start was never reported brings the start."""
    optional: dict[str, Any] = {}
    if instance_id:
        optional["instance_id"] = instance_id
    if instance_ready_at is not None:
        optional["instance_ready_at"] = instance_ready_at.isoformat()
    report = RunnerPredictionCompleted(
        prediction_id=prediction_id,
        runner_id=runner_id,
        status=result.status,
        output=result.output,
        logs=result.logs,
        error=result.error,
        started_at=result.started_at.isoformat(),
        completed_at=result.completed_at.isoformat(),
        predict_time=result.predict_time,
        **optional,
    )
    return runner_event(report, traceparent, version=2 + progress_reports)


def instance_subject(kind: str) -> str:
    return runner_instance_report_subject(kind)


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
