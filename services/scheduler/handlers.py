"""Application layer: turn commands and runner reports into prediction events."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from libs.bus.subjects import runner_jobs
from libs.telemetry import current_traceparent
from libs.events import Envelope, EventMetadata
from libs.eventstore import EventStore, OutboxMessage
from libs.eventstore.retry import retry_on_conflict
from services.scheduler.domain import prediction as model
from services.scheduler.domain.errors import InvalidPredictionRequest, PredictionNotFound
from services.scheduler.ports import Clock, RegistryClient, RunnerControl

log = logging.getLogger(__name__)

RUNNER_EVENTS_CONSUMER = "scheduler-runner-events"
WEBHOOK_EVENTS = frozenset({"start", "output", "logs", "completed"})


@dataclass(frozen=True)
class CreatePrediction:
    version_id: str
    input: dict[str, Any]
    account: str
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    source: str = "api"


def _metadata(correlation_id: str, causation_id: str | None = None, actor: str | None = None) -> EventMetadata:
    return EventMetadata(
        correlation_id=correlation_id,
        causation_id=causation_id,
        traceparent=current_traceparent(),
        actor=actor,
    )


async def create_prediction(
    cmd: CreatePrediction, *, store: EventStore, registry: RegistryClient, clock: Clock
) -> model.Prediction:
    if not isinstance(cmd.input, dict):
        raise InvalidPredictionRequest("input must be a JSON object")
    unknown = set(cmd.webhook_events_filter or ()) - WEBHOOK_EVENTS
    if unknown:
        raise InvalidPredictionRequest(f"unknown webhook events: {', '.join(sorted(unknown))}")
    version = await registry.get_version(cmd.version_id)
    prediction_id = model.new_prediction_id()
    events = model.decide_create(
        prediction_id,
        model=version.model,
        version_id=version.id,
        hardware=version.hardware,
        input=cmd.input,
        account=cmd.account,
        created_at=clock.now(),
        webhook=cmd.webhook,
        webhook_events_filter=cmd.webhook_events_filter,
        source=cmd.source,
        metadata=_metadata(prediction_id, actor=cmd.account),
    )
    job = {
        "prediction_id": prediction_id,
        "version_id": version.id,
        "package_key": version.package_key,
        "predictor_ref": version.predictor_ref,
        "input": cmd.input,
        "created_at": events[0].data["created_at"],
        "traceparent": events[0].metadata.traceparent,
    }
    headers = {"traceparent": job["traceparent"]} if job["traceparent"] else {}
    async with store.transaction() as tx:
        stored = await tx.append(model.stream_id(prediction_id), events, expected_version=0)
        await tx.enqueue(
            OutboxMessage(runner_jobs(version.hardware), json.dumps(job).encode(), prediction_id, headers)
        )
    return model.load(prediction_id, stored)


async def get_prediction(prediction_id: str, *, store: EventStore) -> model.Prediction:
    events = await store.read_stream(model.stream_id(prediction_id))
    if not events:
        raise PredictionNotFound(f"prediction {prediction_id} not found")
    return model.load(prediction_id, events)


async def list_prediction_events(prediction_id: str, *, store: EventStore) -> list[Envelope]:
    events = await store.read_stream(model.stream_id(prediction_id))
    if not events:
        raise PredictionNotFound(f"prediction {prediction_id} not found")
    return events


async def cancel_prediction(
    prediction_id: str, *, store: EventStore, clock: Clock, runners: RunnerControl, actor: str | None = None
) -> model.Prediction:
    async def attempt() -> model.Prediction:
        async with store.transaction() as tx:
            history = await tx.read_stream(model.stream_id(prediction_id))
            if not history:
                raise PredictionNotFound(f"prediction {prediction_id} not found")
            state = model.load(prediction_id, history)
            events = model.decide_cancel(
                state, completed_at=clock.now().isoformat(), metadata=_metadata(prediction_id, actor=actor)
            )
            if events:
                stored = await tx.append(model.stream_id(prediction_id), events, expected_version=state.version)
                history = history + stored
            return model.load(prediction_id, history)

    prediction = await retry_on_conflict(attempt)
    await runners.request_cancel(prediction_id)
    return prediction


async def record_runner_event(event: Envelope, kind: str, *, store: EventStore) -> None:
    """Fold a runner's report (`kind` is `started` or `completed`) into the prediction, exactly once."""
    prediction_id = event.data["prediction_id"]

    async def attempt() -> None:
        async with store.transaction() as tx:
            if not await tx.track(RUNNER_EVENTS_CONSUMER, event.id):
                return
            history = await tx.read_stream(model.stream_id(prediction_id))
            if not history:
                log.warning("runner reported on unknown prediction %s; dropped", prediction_id)
                return
            state = model.load(prediction_id, history)
            metadata = _metadata(prediction_id, causation_id=event.id, actor=event.data.get("runner_id"))
            new_events = _decide_for_runner_event(state, kind, event, metadata)
            if new_events:
                await tx.append(model.stream_id(prediction_id), new_events, expected_version=state.version)

    await retry_on_conflict(attempt)


def _decide_for_runner_event(
    state: model.Prediction, kind: str, event: Envelope, metadata: EventMetadata
) -> list[Envelope]:
    data = event.data
    runner_id = data.get("runner_id", "")
    if kind == "started":
        return model.decide_start(state, started_at=data["started_at"], runner_id=runner_id, metadata=metadata)
    if kind == "completed":
        return model.decide_complete(
            state,
            status=data["status"],
            output=data.get("output"),
            logs=data.get("logs") or "",
            error=data.get("error"),
            started_at=data.get("started_at"),
            completed_at=data["completed_at"],
            predict_time=data.get("predict_time"),
            runner_id=runner_id,
            metadata=metadata,
        )
    return []
