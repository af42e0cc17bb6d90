"""The `work` table (predictions not yet ended, by queue) and the instance streams of the event log."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from libs.events import Envelope
from libs.eventstore import EventStore
from libs.eventstore.store import _row_to_envelope
from services.scheduler.domain import fair_share

# Runs one statement (`:name` parameters) and returns its rows: `EventStore.statements.fetch` on the hot path,
# `fetch_in(conn)` inside a transaction.
Fetch = Callable[[str, dict[str, Any]], Awaitable[list[Any]]]


def fetch_in(conn: Any) -> Fetch:
    """`Fetch` on a SQLAlchemy connection (in its transaction)."""

    async def fetch(statement: str, params: dict[str, Any]) -> list[Any]:
        return list((await conn.execute(text(statement), params)).all())

    return fetch


@dataclass(frozen=True)
class WorkItem:
    prediction_id: str
    queue: str
    label: str
    model_version: str
    deployment: str | None
    account: str
    created_at: datetime
    started_at: datetime | None
    node: str | None
    instance: str | None
    told: str
    # Held back by fair share: not published to its queue yet.
    held: bool = False


def add(schema: str, *, prediction_id: str, queue: str, label: str, model_version: str, deployment: str | None,
        account: str, created_at: datetime, held_job: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """The statement adding a prediction's work row (for a unit of work's `also`). ``held_job``: the message to
    publish later (subject, payload, headers) when fair share holds the job."""
    return (
        f"INSERT INTO {schema}.work (prediction_id, queue, label, model_version, deployment, account, created_at,"
        " held_job) VALUES (:id, :queue, :label, :version, :deployment, :account, :created_at,"
        " CAST(:held_job AS jsonb)) ON CONFLICT (prediction_id) DO NOTHING",
        {"id": prediction_id, "queue": queue, "label": label, "version": model_version, "deployment": deployment,
         "account": account, "created_at": created_at,
         "held_job": None if held_job is None else json.dumps(held_job)},
    )


async def queue_load(fetch: Fetch, schema: str, queue: str) -> fair_share.QueueLoad:
    """What fair share decides on: the queue's running predictions, and its waiting jobs by account."""
    rows = await fetch(
        f"SELECT account, started_at IS NOT NULL AS running, held_job IS NOT NULL AS held, count(*) AS n"
        f" FROM {schema}.work WHERE queue = :queue GROUP BY 1, 2, 3",
        {"queue": queue},
    )
    admitted: Counter[str] = Counter()
    held: Counter[str] = Counter()
    running = 0
    for row in rows:
        if row.running:
            running += row.n
        elif row.held:
            held[row.account] += row.n
        else:
            admitted[row.account] += row.n
    return fair_share.QueueLoad(running, admitted, held)


async def held_jobs(conn: Any, schema: str, queue: str) -> list[fair_share.HeldJob]:
    rows = (await conn.execute(
        text(f"SELECT prediction_id, account, created_at FROM {schema}.work"
             " WHERE queue = :queue AND held_job IS NOT NULL ORDER BY created_at, prediction_id"),
        {"queue": queue},
    )).all()
    return [fair_share.HeldJob(row.prediction_id, row.account, row.created_at) for row in rows]


async def take_held_job(conn: Any, schema: str, prediction_id: str) -> dict[str, Any] | None:
    """The held job's message, no longer held (the caller publishes it in the same transaction); None when
    it was released, canceled or ended meanwhile."""
    row = (await conn.execute(
        text(f"SELECT held_job FROM {schema}.work WHERE prediction_id = :id AND held_job IS NOT NULL FOR UPDATE"),
        {"id": prediction_id},
    )).first()
    if row is not None:
        await conn.execute(text(f"UPDATE {schema}.work SET held_job = NULL WHERE prediction_id = :id"),
                           {"id": prediction_id})
    if row is None:
        return None
    value = row[0]
    return value if isinstance(value, dict) else json.loads(value)


def mark_started(schema: str, prediction_id: str, *, started_at: datetime, node: str,
                 instance: str | None) -> tuple[str, dict[str, Any]]:
    """The statement recording where and when a prediction started (for a unit of work's `also`)."""
    return (
        f"UPDATE {schema}.work SET started_at = :at, node = :node, instance = :instance WHERE prediction_id = :id",
        {"id": prediction_id, "at": started_at, "node": node, "instance": instance},
    )


async def remove(conn: Any, schema: str, prediction_id: str) -> None:
    await conn.execute(text(f"DELETE FROM {schema}.work WHERE prediction_id = :id"), {"id": prediction_id})


def end_parts(schema: str, prediction_id: str, *, forget_deadline: bool,
              data_removal_due: datetime | None) -> list[tuple[str, dict[str, Any]]]:
    """Everything a prediction's end changes outside its stream: its work row goes, its Cancel-After deadline
    too (``forget_deadline``), its data removal becomes due at ``data_removal_due`` (for a unit's `also`)."""
    parts: list[tuple[str, dict[str, Any]]] = [
        (f"DELETE FROM {schema}.work WHERE prediction_id = :id", {"id": prediction_id})]
    if forget_deadline:
        parts.append((f"DELETE FROM {schema}.deadlines WHERE prediction_id = :id", {"id": prediction_id}))
    if data_removal_due is not None:
        parts.append((f"INSERT INTO {schema}.data_removals (prediction_id, due_at) VALUES (:id, :due)"
                      " ON CONFLICT (prediction_id) DO NOTHING", {"id": prediction_id, "due": data_removal_due}))
    return parts


def _held_elsewhere_in_its_queue(schema: str) -> str:
    """Whether jobs of the queue of prediction `:id` are held by fair share (`:id` itself left out)."""
    return (f"EXISTS (SELECT 1 FROM {schema}.work AS w WHERE w.held_job IS NOT NULL AND w.prediction_id <> :id"
            f" AND w.queue = (SELECT queue FROM {schema}.work WHERE prediction_id = :id))")


async def end(conn: Any, schema: str, prediction_id: str, *, forget_deadline: bool,
              data_removal_due: datetime | None) -> bool:
    """`end_parts` in one statement; returns whether jobs of its queue are held by fair share (a place came
    free for one)."""
    parts = end_parts(schema, prediction_id, forget_deadline=forget_deadline, data_removal_due=data_removal_due)
    params = {key: value for _, part_params in parts for key, value in part_params.items()}
    # The statement's snapshot still shows the work row being deleted: its queue is read from it.
    row = (await conn.execute(
        text(f"WITH {', '.join(f'p{i} AS ({sql})' for i, (sql, _) in enumerate(parts))}"
             f" SELECT {_held_elsewhere_in_its_queue(schema)} AS held"),
        params,
    )).first()
    return bool(row and row.held)


@dataclass(frozen=True)
class ReportContext:
    """What recording a runner's report needs: whether the consumer has seen the message, whether jobs of the
    prediction's queue are held by fair share, and the prediction's events."""

    seen: bool
    held: bool
    history: list[Envelope]


async def read_for_reports(fetch: Fetch, schema: str, *, consumer: str,
                           reports: list[tuple[str, str, str]]) -> dict[str, ReportContext]:
    """`ReportContext` of each (message id, prediction id, stream id) of ``reports``, by message id, in one
    statement (each prediction at most once)."""
    message_ids, prediction_ids, stream_ids = (list(column) for column in zip(*reports, strict=True))
    rows = await fetch(
        (f"SELECT r.message_id,"
             f" EXISTS (SELECT 1 FROM {schema}.tracking AS t WHERE t.consumer = :consumer"
             f" AND t.message_id = r.message_id) AS seen,"
             f" EXISTS (SELECT 1 FROM {schema}.work AS w WHERE w.held_job IS NOT NULL"
             f" AND w.prediction_id <> r.prediction_id"
             f" AND w.queue = (SELECT queue FROM {schema}.work WHERE prediction_id = r.prediction_id)) AS held,"
             f" e.*"
             f" FROM unnest(CAST(:messages AS text[]), CAST(:predictions AS text[]), CAST(:streams AS text[]))"
             f" AS r(message_id, prediction_id, stream_id)"
             f" LEFT JOIN {schema}.events AS e ON e.stream_id = r.stream_id"
             f" ORDER BY r.message_id, e.stream_version"),
        {"consumer": consumer, "messages": message_ids, "predictions": prediction_ids, "streams": stream_ids},
    )
    found: dict[str, ReportContext] = {}
    for row in rows:
        context = found.get(row.message_id)
        if context is None:
            context = found[row.message_id] = ReportContext(bool(row.seen), bool(row.held), [])
        if row.event_id is not None:
            context.history.append(_row_to_envelope(row))
    return found


def set_told(schema: str, prediction_id: str, told: str) -> tuple[str, dict[str, Any]]:
    """The statement remembering what a waiting prediction was last told (for a unit of work's `also`)."""
    return f"UPDATE {schema}.work SET told = :told WHERE prediction_id = :id", {"id": prediction_id, "told": told}


async def all_work(store: EventStore) -> list[WorkItem]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text(
            f"SELECT prediction_id, queue, label, model_version, deployment, account, created_at, started_at, node,"
            f" instance, told, held_job IS NOT NULL AS held FROM {store.schema}.work"
            " ORDER BY created_at, prediction_id"))).all()
    return [WorkItem(row.prediction_id, row.queue, row.label, row.model_version, row.deployment, row.account,
                     row.created_at, row.started_at, row.node, row.instance, row.told, row.held)
            for row in rows]


async def instance_events(store: EventStore, after: int) -> list[Envelope]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            text(f"SELECT * FROM {store.schema}.events WHERE (stream_id LIKE 'instance-%' OR stream_id LIKE 'node-%')"
                 " AND position > :after"
                 " ORDER BY position LIMIT 5000"),
            {"after": after},
        )).all()
    return [_row_to_envelope(row) for row in rows]
