"""Application layer: turn commands and runner reports into prediction events."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from libs.bus.consumer import Retry
from libs.bus.subjects import runner_jobs
from libs.telemetry import current_traceparent
from libs.events import Envelope, EventMetadata
from libs.eventstore import EventStore, OutboxMessage, Transaction
from libs.eventstore.retry import retry_on_conflict
from services.scheduler.domain import prediction as model
from services.scheduler.domain.errors import (
    InvalidIdempotencyKeyReuse,
    InvalidPredictionRequest,
    PredictionNotFound,
    QueueUnavailable,
)
from services.scheduler.domain.schema import redact
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
    # Cancel-After: cancel the prediction this many seconds after its creation if it has not ended.
    cancel_after_seconds: float | None = None
    # Idempotency-Key: the same key (of this account) and fingerprint within 24 h return the same prediction.
    idempotency_key: str | None = None
    request_fingerprint: str = ""


def _metadata(correlation_id: str, causation_id: str | None = None, actor: str | None = None) -> EventMetadata:
    return EventMetadata(
        correlation_id=correlation_id,
        causation_id=causation_id,
        traceparent=current_traceparent(),
        actor=actor,
    )


IDEMPOTENCY_WINDOW = "24 hours"


class _KeyTakenMeanwhile(Exception):
    """Another request stored the same Idempotency-Key first; this transaction is rolled back."""


async def create_prediction(
    cmd: CreatePrediction,
    *,
    store: EventStore,
    registry: RegistryClient,
    clock: Clock,
    queue_open: Callable[[], bool] = lambda: True,
) -> model.Prediction:
    prediction, _ = await create_prediction_once(cmd, store=store, registry=registry, clock=clock, queue_open=queue_open)
    return prediction


async def create_prediction_once(
    cmd: CreatePrediction,
    *,
    store: EventStore,
    registry: RegistryClient,
    clock: Clock,
    queue_open: Callable[[], bool] = lambda: True,
) -> tuple[model.Prediction, bool]:
    """Create the prediction, or return the one an earlier request with the same Idempotency-Key created.

    Returns (prediction, replayed). The key is stored in the transaction that stores the prediction, so a
    client whose request died anywhere (gateway, scheduler, network) can retry with the key and never get two.
    """
    for _ in range(3):
        if cmd.idempotency_key:
            earlier = await _earlier_prediction(store, cmd)
            if earlier is not None:
                return earlier, True
        try:
            return await _create(cmd, store=store, registry=registry, clock=clock, queue_open=queue_open), False
        except _KeyTakenMeanwhile:
            continue  # a concurrent request with the key won; the next round returns its prediction
    raise QueueUnavailable("the Idempotency-Key is being used by a concurrent request; retry")


async def _earlier_prediction(store: EventStore, cmd: CreatePrediction) -> model.Prediction | None:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    f"SELECT fingerprint, prediction_id FROM {store.schema}.idempotency_keys"
                    f" WHERE account = :account AND key = :key AND created_at > now() - interval '{IDEMPOTENCY_WINDOW}'"
                ),
                {"account": cmd.account, "key": cmd.idempotency_key},
            )
        ).first()
    if row is None:
        return None
    if row.fingerprint != cmd.request_fingerprint:
        raise InvalidIdempotencyKeyReuse(
            "This Idempotency-Key was used in the last 24 hours with a different request; use a new key"
        )
    return await get_prediction(row.prediction_id, store=store)


async def _store_key(tx: Transaction, schema: str, cmd: CreatePrediction, prediction_id: str) -> None:
    # An expired row is taken over; a live one means a concurrent request stored the key first.
    stored = (
        await tx.conn.execute(
            text(
                f"INSERT INTO {schema}.idempotency_keys (account, key, fingerprint, prediction_id)"
                " VALUES (:account, :key, :fingerprint, :prediction_id)"
                " ON CONFLICT (account, key) DO UPDATE SET fingerprint = EXCLUDED.fingerprint,"
                " prediction_id = EXCLUDED.prediction_id, created_at = now()"
                f" WHERE {schema}.idempotency_keys.created_at <= now() - interval '{IDEMPOTENCY_WINDOW}'"
                " RETURNING prediction_id"
            ),
            {"account": cmd.account, "key": cmd.idempotency_key, "fingerprint": cmd.request_fingerprint,
             "prediction_id": prediction_id},
        )
    ).first()
    if stored is None:
        raise _KeyTakenMeanwhile()


async def _create(
    cmd: CreatePrediction,
    *,
    store: EventStore,
    registry: RegistryClient,
    clock: Clock,
    queue_open: Callable[[], bool],
) -> model.Prediction:
    if not isinstance(cmd.input, dict):
        raise InvalidPredictionRequest("input must be a JSON object")
    unknown = set(cmd.webhook_events_filter or ()) - WEBHOOK_EVENTS
    if unknown:
        raise InvalidPredictionRequest(f"unknown webhook events: {', '.join(sorted(unknown))}")
    if cmd.cancel_after_seconds is not None and cmd.cancel_after_seconds <= 0:
        raise InvalidPredictionRequest("Cancel-After must be a positive duration")
    if not queue_open():
        # The outbox would keep the job until NATS is back, but no runner could start it meanwhile: refuse now,
        # rather than accept work that silently waits; the client retries after Retry-After.
        raise QueueUnavailable("predictions cannot be queued right now (message bus unreachable)")
    version = await registry.get_version(cmd.version_id)
    prediction_id = model.new_prediction_id()
    created_at = clock.now()
    deadline = None if cmd.cancel_after_seconds is None else created_at + timedelta(seconds=cmd.cancel_after_seconds)
    events = model.decide_create(
        prediction_id,
        model=version.model,
        version_id=version.id,
        hardware=version.hardware,
        # Secret values never enter the event log (stored, published, shown by the API and webhooks).
        input=redact(cmd.input, version.secret_inputs),
        account=cmd.account,
        created_at=created_at,
        webhook=cmd.webhook,
        webhook_events_filter=cmd.webhook_events_filter,
        source=cmd.source,
        metadata=_metadata(prediction_id, actor=cmd.account),
        stream=version.streams,
        deadline=deadline,
    )
    # The job is the one place the clear input travels: its outbox row is deleted once published and the
    # work-queue message once the runner acknowledges it.
    job = {
        "prediction_id": prediction_id,
        "version_id": version.id,
        "package_key": version.package_key,
        "predictor_ref": version.predictor_ref,
        "input": cmd.input,
        "account": cmd.account,
        "stream": version.streams,
        "created_at": events[0].data["created_at"],
        "traceparent": events[0].metadata.traceparent,
    }
    headers = {"traceparent": job["traceparent"]} if job["traceparent"] else {}
    async with store.transaction() as tx:
        if cmd.idempotency_key:
            await _store_key(tx, store.schema, cmd, prediction_id)
        stored = await tx.append(model.stream_id(prediction_id), events, expected_version=0)
        await tx.enqueue(
            OutboxMessage(runner_jobs(version.hardware), json.dumps(job).encode(), prediction_id, headers)
        )
        if deadline is not None:
            await tx.conn.execute(
                text(f"INSERT INTO {store.schema}.deadlines (prediction_id, due_at) VALUES (:id, :due)"),
                {"id": prediction_id, "due": deadline},
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
    prediction_id: str,
    *,
    store: EventStore,
    clock: Clock,
    runners: RunnerControl,
    actor: str | None = None,
    reason: str = "canceled",
) -> model.Prediction:
    async def attempt() -> model.Prediction:
        async with store.transaction() as tx:
            history = await tx.read_stream(model.stream_id(prediction_id))
            if not history:
                raise PredictionNotFound(f"prediction {prediction_id} not found")
            state = model.load(prediction_id, history)
            events = model.decide_cancel(
                state, completed_at=clock.now().isoformat(), metadata=_metadata(prediction_id, actor=actor),
                reason=reason,
            )
            if events:
                stored = await tx.append(model.stream_id(prediction_id), events, expected_version=state.version)
                history = history + stored
            if state.deadline is not None:
                await _forget_deadline(tx, store, prediction_id)
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
            try:
                new_events = _decide_for_runner_event(state, kind, event, metadata)
            except model.ProgressOutOfOrder as exc:
                # Rolls the tracking back too: the report is redelivered after the ones before it.
                raise Retry(str(exc), delay=0.1) from None
            if new_events:
                await tx.append(model.stream_id(prediction_id), new_events, expected_version=state.version)
                if state.deadline is not None and new_events[-1].type.removeprefix("prediction.") in model.TERMINAL:
                    await _forget_deadline(tx, store, prediction_id)

    await retry_on_conflict(attempt)


async def _forget_deadline(tx: Any, store: EventStore, prediction_id: str) -> None:
    await tx.conn.execute(
        text(f"DELETE FROM {store.schema}.deadlines WHERE prediction_id = :id"), {"id": prediction_id}
    )


async def cancel_due_predictions(
    *, store: EventStore, clock: Clock, runners: RunnerControl, batch: int = 100
) -> list[str]:
    """Cancel the predictions whose Cancel-After deadline has passed; returns their ids.

    Each is canceled in its own transaction (which deletes its deadline row), so several scheduler
    instances may sweep at once: a prediction another instance canceled first is left as it is.
    """
    async with store.engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT prediction_id FROM {store.schema}.deadlines WHERE due_at <= :now"
                    " ORDER BY due_at LIMIT :n"
                ),
                {"now": clock.now(), "n": batch},
            )
        ).all()
    canceled = []
    for row in rows:
        try:
            await cancel_prediction(row.prediction_id, store=store, clock=clock, runners=runners,
                                    actor="scheduler", reason="deadline")
        except PredictionNotFound:
            async with store.transaction() as tx:
                await _forget_deadline(tx, store, row.prediction_id)
            continue
        canceled.append(row.prediction_id)
    return canceled


def _decide_for_runner_event(
    state: model.Prediction, kind: str, event: Envelope, metadata: EventMetadata
) -> list[Envelope]:
    data = event.data
    runner_id = data.get("runner_id", "")
    if kind == "progress":
        return model.decide_progress(
            state,
            seq=int(data.get("seq") or 0),
            output_items=list(data.get("output_items") or []),
            logs=data.get("logs") or "",
            metadata=metadata,
        )
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
