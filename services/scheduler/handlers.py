"""Application layer: turn commands and runner reports into prediction events."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from sqlalchemy import text

from libs.blobs import SPILLED_FIELD, has_spilled, spill_large_fields, spilled_keys
from libs.bus.consumer import Retry
from libs.bus.subjects import SCHEDULER_RUNNER_EVENTS_DURABLE, queue_key, runner_queue
from libs.events import Envelope, EventMetadata
from libs.eventstore import AlreadyTracked, EventStore, OneStatement, OutboxMessage, Transaction
from libs.eventstore.retry import retry_on_conflict
from libs.hardware import HardwareCatalog, load_catalog
from libs.predictions import (
    TERMINAL_EVENT_TYPES,
    PredictionCreated,
    PredictionProgressed,
    PredictionStarted,
    PredictionStatus,
    RunnerPredictionCompleted,
    RunnerPredictionProgress,
    RunnerPredictionStarted,
    RunnerReport,
    parse_runner_report,
    restore_event,
    runner_report_class,
)
from libs.sealing import SEALED_INPUT, seal_json
from libs.telemetry import current_traceparent, start_span_from_traceparent
from services.scheduler.adapters import work_postgres as work
from services.scheduler.domain import fair_share
from services.scheduler.domain import instance as inst
from services.scheduler.domain import prediction as model
from services.scheduler.domain.errors import (
    InvalidIdempotencyKeyReuse,
    InvalidPredictionRequest,
    PredictionNotFound,
    QueueUnavailable,
)
from services.scheduler.domain.schema import redact
from services.scheduler.ports import Clock, PredictionData, RegistryClient, RunnerControl

log = logging.getLogger(__name__)

RUNNER_EVENTS_CONSUMER = SCHEDULER_RUNNER_EVENTS_DURABLE
# Fields of a prediction event that may be too large for one NATS message (libs.blobs.spill).
LARGE_FIELDS = ("output", "output_items", "logs", "error")
WEBHOOK_EVENTS = frozenset({"start", "output", "logs", "completed"})
DEFAULT_FAIR_SHARE = fair_share.FairSharePolicy()
# Replicate removes an API prediction's input, output and logs an hour after it ends.
DEFAULT_RETENTION_SECONDS = 3600.0


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
    # Created through this deployment (`owner/name`), which runs it on `hardware` (its release's SKU).
    deployment: str | None = None
    hardware: str | None = None
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
    hardware_catalog: HardwareCatalog | None = None,
    secrets_key: X25519PublicKey | None = None,
    queue_open: Callable[[], bool] = lambda: True,
    fair_share_policy: fair_share.FairSharePolicy = DEFAULT_FAIR_SHARE,
    recent_loads: fair_share.RecentLoads | None = None,
) -> model.Prediction:
    prediction, _ = await create_prediction_once(
        cmd, store=store, registry=registry, clock=clock, hardware_catalog=hardware_catalog,
        secrets_key=secrets_key, queue_open=queue_open, fair_share_policy=fair_share_policy,
        recent_loads=recent_loads,
    )
    return prediction


async def create_prediction_once(
    cmd: CreatePrediction,
    *,
    store: EventStore,
    registry: RegistryClient,
    clock: Clock,
    hardware_catalog: HardwareCatalog | None = None,
    secrets_key: X25519PublicKey | None = None,
    queue_open: Callable[[], bool] = lambda: True,
    fair_share_policy: fair_share.FairSharePolicy = DEFAULT_FAIR_SHARE,
    recent_loads: fair_share.RecentLoads | None = None,
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
            created = await _create(
                cmd, store=store, registry=registry, clock=clock, hardware_catalog=hardware_catalog,
                secrets_key=secrets_key, queue_open=queue_open, fair_share_policy=fair_share_policy,
                recent_loads=recent_loads,
            )
            return created, False
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
    hardware_catalog: HardwareCatalog | None,
    secrets_key: X25519PublicKey | None,
    queue_open: Callable[[], bool],
    fair_share_policy: fair_share.FairSharePolicy = DEFAULT_FAIR_SHARE,
    recent_loads: fair_share.RecentLoads | None = None,
) -> model.Prediction:
    """Record the prediction and queue its job.

    Secret input values are sealed for the runners (``secrets_key``) before anything is stored: events carry
    a mask, the job the sealed values. Without a key, a request carrying secret values is refused.
    """
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
    hardware = cmd.hardware or version.hardware
    # Jobs go to the prediction's own queue (its deployment's, else its version's) on the hardware's runner
    # label (the catalogue maps SKUs to labels); only the instances placed for that queue consume it.
    runner_label = (hardware_catalog or load_catalog()).runner_label(hardware)
    queue = queue_key(version.id, cmd.deployment)
    secret_values = {
        name: value for name, value in cmd.input.items() if name in version.secret_inputs and value is not None
    }
    if secret_values and secrets_key is None:
        raise InvalidPredictionRequest(
            "this installation cannot accept secret inputs: no key to seal them for the runners is configured"
        )
    redacted = redact(cmd.input, version.secret_inputs)
    prediction_id = model.new_prediction_id()
    created_at = clock.now()
    deadline = None if cmd.cancel_after_seconds is None else created_at + timedelta(seconds=cmd.cancel_after_seconds)
    events = model.decide_create(
        prediction_id,
        model=version.model,
        version_id=version.id,
        hardware=hardware,
        # Secret values never enter the event log (stored, published, shown by the API and webhooks).
        input=redacted,
        account=cmd.account,
        created_at=created_at,
        webhook=cmd.webhook,
        webhook_events_filter=cmd.webhook_events_filter,
        source=cmd.source,
        metadata=_metadata(prediction_id, actor=cmd.account),
        stream=version.streams,
        deadline=deadline,
        deployment=cmd.deployment,
    )
    # Secret values travel only sealed, so neither the outbox (nor PostgreSQL's WAL) nor the job stream
    # ever holds them in clear; the runner opens them right before the model gets its input.
    job: dict[str, Any] = {
        "prediction_id": prediction_id,
        "version_id": version.id,
        "package_key": version.package_key,
        "predictor_ref": version.predictor_ref,
        "input": redacted,
        "account": cmd.account,
        "stream": version.streams,
        "created_at": events[0].data["created_at"],
        "traceparent": events[0].metadata.traceparent,
        "queue": queue,
    }
    if secret_values:
        assert secrets_key is not None
        job[SEALED_INPUT] = seal_json(secret_values, secrets_key)
    headers = {"traceparent": job["traceparent"]} if job["traceparent"] else {}
    subject = runner_queue(runner_label, queue)
    # Fair share: into the queue now, unless it is backed up and this account has its share of it; then the job
    # waits in its work row and the control loop publishes it in turn. Read before the write: the share is a
    # policy of turns, not a limit that two creates at the same moment must not pass together, so a load read a
    # moment ago serves while it plainly admits the job (`RecentLoads`).
    now = time.monotonic()
    admitted = recent_loads is not None and recent_loads.admits(queue, cmd.account, fair_share_policy, now)
    if not admitted:
        load = await work.queue_load(store.statements.fetch, store.schema, queue)
        if recent_loads is not None:
            recent_loads.read(queue, load, now)
        admitted = fair_share.admit(load, cmd.account, fair_share_policy)
    if recent_loads is not None:
        recent_loads.added(queue, cmd.account, admitted=admitted)
    # A new prediction reads nothing: everything is written in one statement. Only a key that a concurrent
    # request may be storing at the same moment needs a transaction that can see it and roll back. Its event and
    # job open new streams, so they go out before this returns (`opens_streams`), not after a read of the outbox.
    unit: AbstractAsyncContextManager[Transaction | OneStatement] = (
        store.transaction() if cmd.idempotency_key else store.one_statement(opens_streams=True)
    )
    async with unit as tx:
        if isinstance(tx, Transaction):
            await _store_key(tx, store.schema, cmd, prediction_id)
        stored = await tx.append(model.stream_id(prediction_id), events, expected_version=0)
        if admitted:
            await tx.enqueue(OutboxMessage(subject, json.dumps(job).encode(), prediction_id, headers))
        await tx.also(*work.add(store.schema, prediction_id=prediction_id, queue=queue, label=runner_label,
                                model_version=version.id, deployment=cmd.deployment, account=cmd.account,
                                created_at=created_at,
                                held_job=None if admitted else {"subject": subject, "job": job, "headers": headers}))
        if deadline is not None:
            await tx.also(f"INSERT INTO {store.schema}.deadlines (prediction_id, due_at) VALUES (:id, :due)",
                          {"id": prediction_id, "due": deadline})
    return model.load(prediction_id, stored)


async def get_prediction(prediction_id: str, *, store: EventStore, js: Any = None) -> model.Prediction:
    events = await store.read_stream(model.stream_id(prediction_id))
    if not events:
        raise PredictionNotFound(f"prediction {prediction_id} not found")
    return model.load(prediction_id, await _restored(js, events))


async def _restored(js: Any, events: list[Envelope]) -> list[Envelope]:
    """The history with large values that events carry by reference put back, so state is complete."""
    if js is None or not any(has_spilled(event.data) for event in events):
        return events
    return [await restore_event(js, event) for event in events]


async def _fitting(js: Any, events: list[Envelope]) -> list[Envelope]:
    """New events whose large values are stored by reference, so each one fits in a NATS message."""
    if js is None:
        return events
    fitted = []
    for event in events:
        data = await spill_large_fields(js, event.data, key=f"{event.data['id']}/{event.id}", fields=LARGE_FIELDS)
        fitted.append(event if data is event.data else event.model_copy(update={"data": data}))
    return fitted


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
    js: Any = None,
    retention_seconds: float = DEFAULT_RETENTION_SECONDS,
) -> model.Prediction:
    async def attempt() -> model.Prediction:
        async with store.transaction() as tx:
            history = await _restored(js, await tx.read_stream(model.stream_id(prediction_id)))
            if not history:
                raise PredictionNotFound(f"prediction {prediction_id} not found")
            state = model.load(prediction_id, history)
            events = model.decide_cancel(
                state, completed_at=clock.now().isoformat(), metadata=_metadata(prediction_id, actor=actor),
                reason=reason,
            )
            if events:
                stored = await tx.append(
                    model.stream_id(prediction_id), await _fitting(js, events), expected_version=state.stream_version
                )
                # The stored copies may hold references; the state returned keeps the values themselves.
                history = history + [
                    kept.model_copy(update={"data": event.data}) for kept, event in zip(stored, events, strict=True)
                ]
                await end_work(tx, store, state, events, retention_seconds)
            elif state.deadline is not None:
                await _forget_deadline(tx, store, prediction_id)
            return model.load(prediction_id, history)

    prediction = await retry_on_conflict(attempt)
    await runners.request_cancel(prediction_id)
    return prediction


async def record_runner_event(
    event: Envelope,
    kind: str,
    *,
    store: EventStore,
    js: Any = None,
    retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    runners: RunnerControl | None = None,
    fair_share_policy: fair_share.FairSharePolicy = DEFAULT_FAIR_SHARE,
) -> None:
    """Fold one runner's report into its prediction, exactly once (`record_runner_events` of one report);
    raises `Retry` when it must come again after the reports before it."""
    [outcome] = await record_runner_events(
        [(event, kind)], store=store, js=js, retention_seconds=retention_seconds, runners=runners,
        fair_share_policy=fair_share_policy,
    )
    if outcome is not None:
        raise outcome


async def record_runner_events(
    reports: list[tuple[Envelope, str]],
    *,
    store: EventStore,
    js: Any = None,
    retention_seconds: float = DEFAULT_RETENTION_SECONDS,
    runners: RunnerControl | None = None,
    fair_share_policy: fair_share.FairSharePolicy = DEFAULT_FAIR_SHARE,
) -> list[Retry | None]:
    """Fold runners' reports (each an event and the last token of its subject) into their predictions, exactly
    once; what becomes of each: None (recorded, or seen before) or `Retry` (to come again after the reports
    before it).

    What a report is comes from its type, today's name (`runner.prediction_started`, ...) or the one runners
    used before (`prediction.started`, ...), so reports still in JetStream from older runners are recorded
    too; the subject's last token only names a report of a type this scheduler does not know. A report that
    carries large values by reference is restored first; the events it leads to store them by reference again
    when they would not fit in a NATS message.

    A batch is one read and one write: the read brings what the decisions need, the write (events, outbox, work
    rows, tracking) is one statement, refused whole if another writer got to a stream or a report first (then
    it is read and decided again). A prediction with several reports in the batch takes them one round each.

    A prediction is never run twice: a report of a second run (its job came back from a node that stopped
    confirming it after predict() had started there) fails the prediction naming that node, and the runners
    are told to stop the second run (``runners``).
    """
    restored = [await restore_event(js, event) if js is not None else event for event, _ in reports]
    parsed = [parse_runner_report(event, kind) for event, (_, kind) in zip(restored, reports, strict=True)]
    outcomes: list[Retry | None] = [None] * len(reports)
    waiting = list(range(len(reports)))
    while waiting:
        # A round takes each prediction's first waiting report; a prediction retried in a round keeps the rest.
        round_, later, taken, deferred = [], [], set(), set()
        for index in waiting:
            prediction_id = restored[index].data["prediction_id"]
            if prediction_id in taken:
                later.append(index)
            else:
                taken.add(prediction_id)
                round_.append(index)
        for index, outcome in zip(round_, await _record_round(
            [(restored[i], parsed[i]) for i in round_], store=store, js=js, retention_seconds=retention_seconds,
            runners=runners, fair_share_policy=fair_share_policy,
        ), strict=True):
            outcomes[index] = outcome
            if outcome is not None:
                deferred.add(restored[index].data["prediction_id"])
        for index in later:
            if restored[index].data["prediction_id"] in deferred:
                outcomes[index] = Retry("an earlier report of its prediction comes again first", delay=0.1)
        waiting = [index for index in later if restored[index].data["prediction_id"] not in deferred]
    return outcomes


@dataclass
class _Recorded:
    """A round's decisions, and what follows once it is written."""

    outcomes: list[Retry | None]
    # Queues where a place came free while jobs are held by fair share.
    freed_queues: set[str]
    # Predictions whose second run is to be stopped.
    second_runs: list[str]


async def _record_round(
    reports: list[tuple[Envelope, RunnerReport | None]],
    *,
    store: EventStore,
    js: Any,
    retention_seconds: float,
    runners: RunnerControl | None,
    fair_share_policy: fair_share.FairSharePolicy,
) -> list[Retry | None]:
    """`record_runner_events` of reports of distinct predictions."""
    message_ids = {event.id for event, _ in reports}

    async def attempt() -> _Recorded:
        contexts = await work.read_for_reports(store.statements.fetch, store.schema,
                                               consumer=RUNNER_EVENTS_CONSUMER, reports=[
            (event.id, event.data["prediction_id"], model.stream_id(event.data["prediction_id"]))
            for event, _ in reports
        ])
        recorded = _Recorded([], set(), [])
        async with store.one_statement() as unit:
            for event, report in reports:
                # The events a report leads to join the trace of the prediction's run.
                with start_span_from_traceparent(f"record {event.type}", event.metadata.traceparent):
                    recorded.outcomes.append(
                        await _decide_report(unit, store, js, event, report, contexts[event.id], recorded,
                                             retention_seconds)
                    )
        return recorded

    async def attempt_until_untracked() -> _Recorded:
        # A report recorded meanwhile (a redelivery to another replica) refuses the whole write; read again, it
        # is seen and left out. Each retry follows a write of one of these reports elsewhere, so they are few.
        for _ in range(len(message_ids) + 1):
            try:
                return await attempt()
            except AlreadyTracked:
                continue
        return await attempt()

    recorded = await retry_on_conflict(attempt_until_untracked)
    # A place in the queue came free: a held job takes it now, not at the next control tick (which releases
    # it too, should this process stop right here).
    for queue in sorted(recorded.freed_queues):
        async with store.transaction() as tx:
            await release_held_turns(tx, store.schema, queue, fair_share_policy)
    if runners is not None:
        for prediction_id in recorded.second_runs:
            await runners.request_cancel(prediction_id)
    return recorded.outcomes


async def _decide_report(
    unit: OneStatement,
    store: EventStore,
    js: Any,
    event: Envelope,
    report: RunnerReport | None,
    context: work.ReportContext,
    recorded: _Recorded,
    retention_seconds: float,
) -> Retry | None:
    """Add what `report` changes to `unit` (its tracking too), or return `Retry` having added nothing."""
    if context.seen:
        return None
    prediction_id = event.data["prediction_id"]
    stream = model.stream_id(prediction_id)
    if report is None:
        log.warning("runner report of unknown type %s on %s; dropped", event.type, prediction_id)
        await unit.track(RUNNER_EVENTS_CONSUMER, event.id)
        return None
    if not context.history:
        log.warning("runner reported on unknown prediction %s; dropped", prediction_id)
        await unit.track(RUNNER_EVENTS_CONSUMER, event.id)
        return None
    state = model.load(prediction_id, await _restored(js, context.history))
    if _reports_second_run(state, report):
        lost = model.decide_lost(
            state, node=state.runner_id, completed_at=datetime.now(UTC).isoformat(),
            metadata=_metadata(prediction_id, causation_id=event.id, actor="scheduler"),
            why=f" (its job came back unfinished and reached node {report.runner_id or '?'})",
        )
        await unit.track(RUNNER_EVENTS_CONSUMER, event.id)
        await unit.append(stream, await _fitting(js, lost), expected_version=state.stream_version)
        await _end_parts(unit, store, state, lost, retention_seconds)
        recorded.second_runs.append(prediction_id)
        _note_freed_place(recorded, state, context)
        return None
    boot_time = (
        await _boot_time(store, state, report)
        if isinstance(report, (RunnerPredictionStarted, RunnerPredictionCompleted)) else None
    )
    metadata = _metadata(prediction_id, causation_id=event.id, actor=report.runner_id)
    try:
        new_events = _decide_for_runner_event(state, report, metadata, boot_time)
    except model.ProgressOutOfOrder as exc:
        # Nothing is written, the tracking neither: the report is redelivered after the ones before it.
        return Retry(str(exc), delay=0.1)
    await unit.track(RUNNER_EVENTS_CONSUMER, event.id)
    if isinstance(report, RunnerPredictionStarted) and not state.is_terminal:
        # Also a job run again on another instance: the work row follows it there.
        await unit.also(*work.mark_started(
            store.schema, prediction_id, started_at=_parse_time(report.started_at),
            node=report.runner_id, instance=report.instance_id,
        ))
    if new_events:
        await unit.append(stream, await _fitting(js, new_events), expected_version=state.stream_version)
        if new_events[-1].type in TERMINAL_EVENT_TYPES:
            await _end_parts(unit, store, state, new_events, retention_seconds)
            _note_freed_place(recorded, state, context)
            return None
        await _track_start(unit, store, new_events, report)
    elif isinstance(report, RunnerPredictionStarted) and state.is_terminal:
        # The job of an ended prediction ran again somewhere (e.g. one failed as lost while its job came back):
        # that run is stopped.
        recorded.second_runs.append(prediction_id)
    return None


def _note_freed_place(recorded: _Recorded, state: model.Prediction, context: work.ReportContext) -> None:
    if context.held and state.version_id:
        recorded.freed_queues.add(queue_key(state.version_id, state.deployment))


def _reports_second_run(state: model.Prediction, report: RunnerReport) -> bool:
    if isinstance(report, RunnerPredictionStarted):
        return model.is_second_run(state, started_at=report.started_at, runner_id=report.runner_id,
                                   instance_id=report.instance_id)
    if isinstance(report, RunnerPredictionCompleted):
        # A completion's start time is predict()'s own; the node and instance tell the runs apart.
        return model.is_second_run(state, started_at=None, runner_id=report.runner_id,
                                   instance_id=report.instance_id)
    if isinstance(report, RunnerPredictionProgress):
        return model.is_second_run(state, started_at=None, runner_id=report.runner_id, instance_id=state.instance_id)
    return False


async def release_held_turns(
    tx: Transaction, schema: str, queue: str, policy: fair_share.FairSharePolicy
) -> list[str]:
    """Publish, in this transaction, the held jobs of `queue` whose turn has come (fair share)."""
    load = await work.queue_load(work.fetch_in(tx.conn), schema, queue)
    turns = fair_share.release(load, await work.held_jobs(tx.conn, schema, queue), policy)
    for prediction_id in turns:
        held = await work.take_held_job(tx.conn, schema, prediction_id)
        if held is not None:
            await tx.enqueue(OutboxMessage(held["subject"], json.dumps(held["job"]).encode(), prediction_id,
                                           dict(held.get("headers") or {})))
    return turns


async def end_work(tx: Transaction, store: EventStore, state: model.Prediction, events: list[Envelope],
                   retention_seconds: float, fair_share_policy: fair_share.FairSharePolicy | None = None) -> None:
    """What follows a prediction's end (``events`` after ``state``) in the transaction that records it: no work
    row, no deadline, a due data removal, all in one statement; given ``fair_share_policy``, held jobs of its
    queue take the place that came free."""
    after = _after(state, events)
    held = await work.end(tx.conn, store.schema, state.id, forget_deadline=state.deadline is not None,
                          data_removal_due=_data_removal_due(after, retention_seconds))
    if held and fair_share_policy is not None:
        await release_held_turns(tx, store.schema, queue_key(state.version_id, state.deployment), fair_share_policy)


async def _end_parts(unit: OneStatement, store: EventStore, state: model.Prediction, events: list[Envelope],
                     retention_seconds: float) -> None:
    """`end_work`'s writes as parts of a one-statement unit (its caller releases held jobs afterwards)."""
    after = _after(state, events)
    for part in work.end_parts(store.schema, state.id, forget_deadline=state.deadline is not None,
                               data_removal_due=_data_removal_due(after, retention_seconds)):
        await unit.also(*part)


def _after(state: model.Prediction, events: list[Envelope]) -> model.Prediction:
    for event in events:
        state = model.evolve(state, event)
    return state


async def fail_unrecorded_report(
    event: Envelope,
    kind: str,
    reason: str,
    *,
    store: EventStore,
    clock: Clock,
    js: Any = None,
    retention_seconds: float = DEFAULT_RETENTION_SECONDS,
) -> None:
    """A runner's completion that could not be recorded however often it was delivered: the prediction fails
    with the reason instead of staying `processing` forever. Other reports are only progress; they are dropped.

    The report is not parsed: it may be the very reason it could not be recorded."""
    if runner_report_class(event.type, kind) is not RunnerPredictionCompleted:
        return
    prediction_id = event.data["prediction_id"]

    async def attempt() -> None:
        async with store.transaction() as tx:
            history = await _restored(js, await tx.read_stream(model.stream_id(prediction_id)))
            if not history:
                return
            state = model.load(prediction_id, history)
            new_events = model.decide_complete(
                state, status=PredictionStatus.FAILED, output=None, logs=state.logs,
                error=f"The prediction's result could not be recorded: {reason}",
                started_at=state.started_at, completed_at=clock.now().isoformat(), predict_time=None,
                runner_id=str(event.data.get("runner_id") or ""),
                metadata=_metadata(prediction_id, causation_id=event.id, actor="scheduler"),
            )
            if new_events:
                await tx.append(
                    model.stream_id(prediction_id), await _fitting(js, new_events),
                    expected_version=state.stream_version,
                )
                await end_work(tx, store, state, new_events, retention_seconds)

    await retry_on_conflict(attempt)


async def _track_start(unit: OneStatement, store: EventStore, new_events: list[Envelope],
                       report: RunnerReport) -> None:
    """Keep the `work` row of a prediction that has not ended in step with its events: started where."""
    prediction_id = new_events[-1].data["id"]
    for new_event in new_events:
        if new_event.type == PredictionStarted.TYPE:
            await unit.also(*work.mark_started(
                store.schema, prediction_id, started_at=_parse_time(new_event.data["started_at"]),
                node=report.runner_id, instance=getattr(report, "instance_id", None),
            ))


def _parse_time(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _forget_deadline(tx: Any, store: EventStore, prediction_id: str) -> None:
    await tx.conn.execute(
        text(f"DELETE FROM {store.schema}.deadlines WHERE prediction_id = :id"), {"id": prediction_id}
    )


async def cancel_due_predictions(
    *, store: EventStore, clock: Clock, runners: RunnerControl, batch: int = 100, js: Any = None,
    retention_seconds: float = DEFAULT_RETENTION_SECONDS,
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
                                    actor="scheduler", reason="deadline", js=js,
                                    retention_seconds=retention_seconds)
        except PredictionNotFound:
            async with store.transaction() as tx:
                await _forget_deadline(tx, store, row.prediction_id)
            continue
        canceled.append(row.prediction_id)
    return canceled


def _data_removal_due(ended: model.Prediction, retention_seconds: float) -> datetime | None:
    """When an ended API prediction's data is removed; None for web predictions, which keep theirs."""
    if ended.source == "web" or not ended.is_terminal or ended.completed_at is None:
        return None
    return _parse_time(ended.completed_at) + timedelta(seconds=retention_seconds)


# Each event type's fields that hold input, output or logs, and what they become once the data is removed.
_SCRUB = f"""
UPDATE {{schema}}.events SET data = (CASE type
    WHEN '{PredictionCreated.TYPE}' THEN jsonb_set(data, '{{{{input}}}}', '{{{{}}}}'::jsonb)
    WHEN '{PredictionProgressed.TYPE}' THEN data || '{{{{"output_items": [], "logs": ""}}}}'::jsonb
    ELSE data || '{{{{"output": null, "logs": ""}}}}'::jsonb
END) - '{SPILLED_FIELD}'
WHERE stream_id = :stream AND type IN ('{PredictionCreated.TYPE}', '{PredictionProgressed.TYPE}',
    {", ".join(f"'{name}'" for name in sorted(TERMINAL_EVENT_TYPES))})
"""


async def remove_due_data(
    *, store: EventStore, clock: Clock, data: PredictionData, js: Any = None, batch: int = 50
) -> list[str]:
    """Remove the data of ended API predictions whose retention period is over; returns their ids.

    Each prediction is handled in its own transaction holding its due row (`FOR UPDATE SKIP LOCKED`), so
    scheduler instances sweeping at once never handle the same prediction twice. The bytes outside the log
    (output files, stream, uploaded inputs) are deleted first, then `prediction.data_removed` is appended and
    the input, output and logs are redacted from the prediction's earlier events; a crash in between leaves
    the row due, and the retry finds the bytes already gone.
    """
    removed: list[str] = []
    for _ in range(batch):
        async with store.transaction() as tx:
            row = (
                await tx.conn.execute(
                    text(f"SELECT prediction_id FROM {store.schema}.data_removals WHERE due_at <= :now"
                         " ORDER BY due_at LIMIT 1 FOR UPDATE SKIP LOCKED"),
                    {"now": clock.now()},
                )
            ).first()
            if row is None:
                break
            prediction_id = row.prediction_id
            history = await tx.read_stream(model.stream_id(prediction_id))
            if history:
                # Restored, so output files of an output stored by reference are found too.
                state = model.load(prediction_id, await _restored(js, history))
                events = model.decide_remove_data(
                    state, removed_at=clock.now().isoformat(),
                    metadata=_metadata(prediction_id, actor="scheduler"),
                )
                if events:
                    await data.remove(prediction_id, input=state.input, output=state.output, account=state.account,
                                      spilled=spilled_keys(prediction_id, history))
                    await tx.append(model.stream_id(prediction_id), events, expected_version=state.stream_version)
                    await tx.conn.execute(text(_SCRUB.format(schema=store.schema)),
                                          {"stream": model.stream_id(prediction_id)})
                    removed.append(prediction_id)
            await tx.conn.execute(
                text(f"DELETE FROM {store.schema}.data_removals WHERE prediction_id = :id"), {"id": prediction_id}
            )
    return removed


async def _boot_time(
    store: EventStore, state: model.Prediction, report: RunnerPredictionStarted | RunnerPredictionCompleted
) -> float | None:
    """Seconds the prediction waited for its instance to boot: from the later of its creation and the
    instance's request to the instance being ready; None when the instance was ready before it came."""
    instance_id = report.instance_id
    if not instance_id or state.status != PredictionStatus.STARTING or state.created_at is None:
        return None
    created = _parse_time(state.created_at)
    # The node says when the instance became ready (its `ready` report may not be recorded yet).
    ready_value = report.instance_ready_at
    if ready_value and _parse_time(ready_value) <= created:
        return None  # a warm instance (the common case): nothing to read
    instance = inst.load(instance_id, await store.read_stream(inst.stream_id(instance_id)))
    ready_at = _parse_time(ready_value) if ready_value else instance.ready_at
    if ready_at is None or instance.requested_at is None:
        return None
    if ready_at <= created:
        return None
    return round(max((ready_at - max(created, instance.requested_at)).total_seconds(), 0.0), 3)


def _decide_for_runner_event(
    state: model.Prediction, report: RunnerReport, metadata: EventMetadata, boot_time: float | None = None
) -> list[Envelope]:
    runner_id = report.runner_id
    if isinstance(report, RunnerPredictionProgress):
        return model.decide_progress(
            state,
            seq=report.seq,
            output_items=list(report.output_items or []),
            logs=report.logs or "",
            metadata=metadata,
        )
    if isinstance(report, RunnerPredictionStarted):
        return model.decide_start(state, started_at=report.started_at, runner_id=runner_id, metadata=metadata,
                                  instance_id=report.instance_id, boot_time=boot_time)
    if isinstance(report, RunnerPredictionCompleted):
        started: list[Envelope] = []
        if state.status == PredictionStatus.STARTING and report.started_at:
            # The start report was not recorded first: the completion brings the start with it.
            started = model.decide_start(state, started_at=report.started_at, runner_id=runner_id,
                                         metadata=metadata, instance_id=report.instance_id, boot_time=boot_time)
            for event_ in started:
                state = model.evolve(state, event_)
        return started + model.decide_complete(
            state,
            status=report.status,
            output=report.output,
            logs=report.logs or "",
            error=report.error,
            started_at=report.started_at,
            completed_at=report.completed_at,
            predict_time=report.predict_time,
            runner_id=runner_id,
            metadata=metadata,
        )
    return []
