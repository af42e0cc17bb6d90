"""The gateway's prediction read model: lifecycle events applied in stream order, each exactly once."""

from __future__ import annotations

import asyncio
import enum
import json
import logging
from collections import OrderedDict
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import text

from libs.bus.subjects import GATEWAY_PREDICTIONS_DURABLE
from libs.db.coalesce import Coalesced
from libs.db.statements import Statements, StatementTransaction
from libs.events import Envelope
from libs.eventstore import EventStore
from libs.predictions import TERMINAL_EVENT_TYPES, TERMINAL_STATUSES, apply_event, restore_event

log = logging.getLogger(__name__)

CONSUMER = GATEWAY_PREDICTIONS_DURABLE
SCHEMA = "gateway"
# `status NOT IN (...)`: the prediction has not ended.
_TERMINAL_SQL = ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))
CREATED = "prediction.created"
# How many new predictions' ids a replica remembers (see `PredictionProjection._rows_awaiting_event`).
REMEMBERED_CREATIONS = 4096


class Outcome(enum.Enum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    GAP = "gap"  # an earlier event of this prediction has not been applied yet


class _RememberedIds:
    """A bounded set of ids, each taken at most once: one forgotten (the oldest, past `size`) costs only the
    statement remembering it would have spared."""

    def __init__(self, size: int = REMEMBERED_CREATIONS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, ids: Any) -> None:
        for id_ in ids:
            self._ids[id_] = None
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)

    def take(self, id_: Any) -> bool:
        try:
            del self._ids[id_]
        except KeyError:
            return False
        return True


class PredictionProjection:
    name = GATEWAY_PREDICTIONS_DURABLE
    tables = ("predictions", "tracking")

    def __init__(self, store: EventStore, js: Any = None) -> None:
        self._store = store
        # Where events that carry large outputs by reference are restored from (libs.blobs.spill).
        self._js = js
        # Answers being stored (`record_answer_soon`), by prediction: this replica's reads wait for them.
        self._answering: dict[str, asyncio.Task[None]] = {}
        # Creations being stored (`apply_created`), by prediction: the consumer waits for them rather than write
        # the same row at the same moment.
        self._creating: dict[str, asyncio.Future[None]] = {}
        # A new prediction's row is written twice over: by the request that created it (`apply_created`, read your
        # writes) and by the consumer of its `prediction.created`, whichever comes first; each committed row is
        # remembered here so that, on this replica, the other one is skipped without a statement.
        # Rows `apply_created` committed, whose event has not come back yet:
        self._rows_awaiting_event = _RememberedIds()
        # Rows the consumer committed from the event, whose request has not stored them yet:
        self._rows_before_request = _RememberedIds()
        # Polls and creates that reach the read model in the same turn of the event loop share one statement.
        self._read_views = Coalesced(self._views_of)
        self._store_created_rows = Coalesced(self._insert_created)

    async def apply(self, event: Envelope) -> tuple[Outcome, dict[str, Any] | None]:
        """Apply one event; returns what happened and, when applied, the view it produced."""
        if not event.type.startswith("prediction."):
            return Outcome.DUPLICATE, None
        async with self._store.transaction() as tx:
            return await self.apply_in(tx.conn, tx, event)

    async def apply_in(self, conn: Any, tx: Any, event: Envelope) -> tuple[Outcome, dict[str, Any] | None]:
        prediction_id = event.data["id"]
        row = (
            await conn.execute(
                text(f"SELECT stream_version, view FROM {SCHEMA}.predictions WHERE id = :id FOR UPDATE"),
                {"id": prediction_id},
            )
        ).first()
        current = row.stream_version if row else 0
        if event.stream_version <= current:
            return Outcome.DUPLICATE, None
        # A terminal event carries every field a finished prediction shows, so it may overtake the events
        # before it; those then count as already applied.
        skips_ahead = row is not None and event.type in TERMINAL_EVENT_TYPES
        if event.stream_version != current + 1 and not skips_ahead:
            return Outcome.GAP, None
        if not await tx.track(CONSUMER, event.id):
            return Outcome.DUPLICATE, None
        if self._js is not None:
            event = await restore_event(self._js, event)
        view = apply_event(row.view if row else None, event)
        await _upsert(conn, view, event.stream_version)
        return Outcome.APPLIED, view

    async def apply_batch(self, events: list[Envelope]) -> list[Outcome]:
        """Apply a batch in two statements, whatever its size: a read of the predictions concerned, then one
        statement that tracks every event and writes every changed prediction, but only if none of those rows
        changed since the read and no event was tracked before (`_write_checked`). When one did, nothing was
        written and the batch is applied again in a transaction that locks the rows first (`_apply_locked`).
        Events of one prediction are folded in stream order; each outcome is what `apply` would have said of that
        event after the ones before it in the batch."""
        outcomes: list[Outcome] = [Outcome.DUPLICATE] * len(events)
        await self._rows_being_written(events)
        indexed = [(i, event) for i, event in enumerate(events)
                   if event.type.startswith("prediction.") and not self._stored_by_this_replica(event)]
        if not indexed:
            return outcomes
        rows = await self._store.statements.fetch(
            f"SELECT id, stream_version, view, xmin::text AS x FROM {SCHEMA}.predictions WHERE id = ANY(:ids)",
            {"ids": sorted({event.data["id"] for _, event in indexed})},
        )
        current = {row.id: (row.stream_version, row.view) for row in rows}
        read_as = {row.id: row.x for row in rows}
        applied = await self._fold(indexed, current, outcomes)
        if not applied:
            return outcomes
        changed = sorted({event.data["id"] for _, event in applied})
        try:
            await _write_checked(self._store.statements, [event.id for _, event in applied],
                                 [(current[pid][1], current[pid][0]) for pid in changed],
                                 [read_as.get(pid) for pid in changed])
        except psycopg.errors.SerializationFailure:
            return await self._apply_locked(events, indexed)
        return self._applied(outcomes, applied)

    async def _rows_being_written(self, events: list[Envelope]) -> None:
        """Wait for this replica's own writes of these predictions' rows (a creation, an answer) still under way:
        read after them, the batch neither collides with them nor repeats a creation this replica stored."""
        if not (self._creating or self._answering):
            return
        writes: set[asyncio.Future[None]] = set()
        for event in events:
            prediction_id = str(event.data.get("id"))
            write = self._creating.get(prediction_id) or self._answering.get(prediction_id)
            if write is not None:
                writes.add(write)
        if writes:
            # `wait` neither raises a write's error nor cancels the write when the consumer is stopped.
            await asyncio.wait(writes)

    async def _apply_locked(self, events: list[Envelope], indexed: list[tuple[int, Envelope]]) -> list[Outcome]:
        """`apply_batch` in one transaction: a locking read, then the statement tracking every event and upserting
        every changed prediction (an event tracked before rolls it all back: `TrackedBefore`)."""
        outcomes: list[Outcome] = [Outcome.DUPLICATE] * len(events)
        async with self._store.statements.transaction() as tx:
            rows = await tx.fetch(
                f"SELECT id, stream_version, view FROM {SCHEMA}.predictions WHERE id = ANY(:ids)"
                " ORDER BY id FOR UPDATE",
                {"ids": sorted({event.data["id"] for _, event in indexed})},
            )
            current = {row.id: (row.stream_version, row.view) for row in rows}
            applied = await self._fold(indexed, current, outcomes)
            if not applied:
                return outcomes
            changed = {event.data["id"] for _, event in applied}
            await _track_and_upsert_all(tx, [event.id for _, event in applied],
                                        [(current[pid][1], current[pid][0]) for pid in sorted(changed)])
        return self._applied(outcomes, applied)

    async def _fold(self, indexed: list[tuple[int, Envelope]], current: dict[str, tuple[int, Any]],
                    outcomes: list[Outcome]) -> list[tuple[int, Envelope]]:
        """Fold the events onto `current` (id -> (version, view), updated in place) in stream order; returns the
        events applied, and marks the gaps in `outcomes`."""
        applied: list[tuple[int, Envelope]] = []
        for i, event in sorted(indexed, key=lambda item: (item[1].data["id"], item[1].stream_version)):
            version, view = current.get(event.data["id"], (0, None))
            if event.stream_version <= version:
                continue
            # A terminal event carries every field a finished prediction shows, so it may overtake the events
            # before it; those then count as already applied.
            skips_ahead = view is not None and event.type in TERMINAL_EVENT_TYPES
            if event.stream_version != version + 1 and not skips_ahead:
                outcomes[i] = Outcome.GAP
                continue
            if self._js is not None:
                event = await restore_event(self._js, event)
            current[event.data["id"]] = (event.stream_version, apply_event(view, event))
            applied.append((i, event))
        return applied

    def _applied(self, outcomes: list[Outcome], applied: list[tuple[int, Envelope]]) -> list[Outcome]:
        for i, _ in applied:
            outcomes[i] = Outcome.APPLIED
        self._rows_before_request.add(event.data["id"] for _, event in applied if event.type == CREATED)
        return outcomes

    def _stored_by_this_replica(self, event: Envelope) -> bool:
        """A creation `apply_created` committed here: its row is at version 1 or later, so the event is a duplicate
        (the first time it comes back; a redelivery reads the row like any other event)."""
        return (event.type == CREATED and event.stream_version == 1
                and self._rows_awaiting_event.take(event.data.get("id")))

    async def record_answer(self, view: dict[str, Any], stream_version: int) -> None:
        """Store the end a `Prefer: wait` request was answered with before its events arrived (read your writes:
        a GET right after the answer shows it). It keeps the version it was folded from, so every event that
        follows still applies on top of it: the start and progress leave an ended view as it is, and the end the
        scheduler records overwrites it with its own fields."""
        # Its commit does not wait for the disk: lost in a crash, the row is back at version `stream_version`,
        # where the events that follow (applied durably, after which nothing is acknowledged) still apply; the
        # scheduler's end overwrites it either way.
        await self._store.shortcut_statements.execute(
            f"UPDATE {SCHEMA}.predictions SET status = :status, view = CAST(:view AS jsonb)"
            " WHERE id = :id AND stream_version = :v",
            {"id": view["id"], "v": stream_version, "status": view["status"],
             "view": json.dumps({**view, "stream_version": stream_version})},
        )

    def record_answer_soon(self, view: dict[str, Any], stream_version: int) -> None:
        """`record_answer` without holding up the answer it stores: it is sent at once and this replica's reads
        (`get`, `list_for_account`) wait for it, so whoever was answered and asks this gateway again sees it.

        A read through another gateway replica within the statement's millisecond may still show the prediction
        running, as it would have before the answer; the end the scheduler records follows either way."""
        prediction_id = view["id"]
        task = asyncio.create_task(self._record_answer_logged(view, stream_version))
        self._answering[prediction_id] = task
        task.add_done_callback(lambda done: self._answered(prediction_id, done))

    async def _record_answer_logged(self, view: dict[str, Any], stream_version: int) -> None:
        try:
            await self.record_answer(view, stream_version)
        except Exception:  # noqa: BLE001 - the events that follow bring the same end
            log.warning("read model not updated for %s", view["id"], exc_info=True)

    def _answered(self, prediction_id: str, task: asyncio.Task[None]) -> None:
        if self._answering.get(prediction_id) is task:
            del self._answering[prediction_id]

    async def answers_stored(self, prediction_id: str | None = None) -> None:
        """Wait for the answers being stored: of one prediction, or (None) all of them."""
        if prediction_id is None:
            waiting = set(self._answering.values())
        else:
            pending = self._answering.get(prediction_id)
            waiting = {pending} if pending is not None else set()
        if waiting:
            # `wait` neither raises the statement's error nor cancels it when this reader is cancelled.
            await asyncio.wait(waiting)

    async def apply_created(self, view: dict[str, Any]) -> None:
        """Read-your-writes: store a just-created prediction before its event comes back over NATS (one
        statement, so no transaction around it)."""
        # A durable commit: the consumer takes a row at version 1 for `prediction.created` already applied (and
        # acknowledges it), so this row must not be lost in a crash.
        prediction_id = view["id"]
        if self._rows_before_request.take(prediction_id):
            return  # its event came first and the consumer committed the row
        creating = self._creating[prediction_id] = asyncio.get_running_loop().create_future()
        try:
            await self._store_created_rows(view)
            self._rows_awaiting_event.add((prediction_id,))
        finally:
            creating.set_result(None)
            if self._creating.get(prediction_id) is creating:
                del self._creating[prediction_id]

    async def _insert_created(self, views: list[dict[str, Any]]) -> list[None]:
        await self._store.statements.execute(*_insert_rows_statement([(view, 1) for view in views]))
        return [None] * len(views)

    async def get(self, prediction_id: str) -> dict[str, Any] | None:
        if self._answering:
            await self.answers_stored(prediction_id)
        return await self._read_views(prediction_id)

    async def _views_of(self, prediction_ids: list[str]) -> list[dict[str, Any] | None]:
        rows = await self._store.statements.fetch(
            f"SELECT id, view FROM {SCHEMA}.predictions WHERE id = ANY(:ids)", {"ids": prediction_ids})
        views = {row.id: row.view for row in rows}
        return [dict(views[id_]) if id_ in views else None for id_ in prediction_ids]

    async def list_for_account(
        self,
        account: str,
        *,
        before: tuple[datetime, str] | None,
        limit: int,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        source: str | None = None,
    ) -> list[dict[str, Any]]:
        query = f"SELECT view FROM {SCHEMA}.predictions WHERE account = :account"
        params: dict[str, Any] = {"account": account, "limit": limit}
        if before is not None:
            query += " AND (created_at, id) < (:created_at, :id)"
            params.update(created_at=before[0], id=before[1])
        if created_after is not None:
            query += " AND created_at >= :created_after"
            params["created_after"] = created_after
        if created_before is not None:
            query += " AND created_at < :created_before"
            params["created_before"] = created_before
        if source is not None:
            query += " AND coalesce(view->>'source', 'api') = :source"
            params["source"] = source
        query += " ORDER BY created_at DESC, id DESC LIMIT :limit"
        await self.answers_stored()
        async with self._store.engine.connect() as conn:
            rows = (await conn.execute(text(query), params)).all()
        return [dict(row.view) for row in rows]


class TrackedBefore(Exception):
    """An event the read model had not applied was already tracked: the batch is handled one event at a time."""


async def _track_and_upsert_all(tx: StatementTransaction, message_ids: list[str],
                                views: list[tuple[dict[str, Any], int]]) -> None:
    """One statement for a whole batch: track its events and upsert each changed prediction's latest view. An
    event tracked before (`TrackedBefore`) rolls it all back with the transaction."""
    row = (
        await tx.fetchone(
            (
                f"WITH tracked AS (INSERT INTO {SCHEMA}.tracking (consumer, message_id)"
                " SELECT :c, unnest(CAST(:message_ids AS text[])) ON CONFLICT DO NOTHING RETURNING 1),"
                f" upserted AS ({_INSERT_ROWS} ON CONFLICT (id) DO UPDATE SET stream_version = EXCLUDED.stream_version,"
                " status = EXCLUDED.status, view = EXCLUDED.view)"
                " SELECT count(*) AS n FROM tracked"
            ),
            {"c": CONSUMER, "message_ids": message_ids, "rows": _rows_json(views)},
        )
    )
    tracked = row.n if row is not None else 0
    if tracked != len(message_ids):
        raise TrackedBefore(f"{len(message_ids) - tracked} of {len(message_ids)} events")


# Rows of the read model as one JSON document (`_rows_json`): a whole batch in one statement. One document, not an
# array per column: psycopg encodes arrays element by element in Python, escaping every quote of every view, while
# the document is a single `json.dumps`. `x` is the row version a checked write expects (`_write_checked`).
_ROWS = (
    "jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(id text, account text, stream_version int, status text,"
    " created_at timestamptz, view jsonb, x text)"
)
_INSERT_ROWS = (
    f"INSERT INTO {SCHEMA}.predictions (id, account, stream_version, status, created_at, view)"
    f" SELECT id, account, stream_version, status, created_at, view FROM {_ROWS}"
)


def _rows_json(views: list[tuple[dict[str, Any], int]], read_as: list[str | None] | None = None) -> str:
    return json.dumps([
        {"id": view["id"], "account": view.get("account") or "", "stream_version": version, "status": view["status"],
         "created_at": view["created_at"], "view": {**view, "stream_version": version},
         "x": read_as[i] if read_as is not None else None}
        for i, (view, version) in enumerate(views)
    ])


async def _write_checked(statements: Statements, message_ids: list[str], views: list[tuple[dict[str, Any], int]],
                         read_as: list[str | None]) -> None:
    """One statement for a whole batch, without locks: track its events and write each changed prediction's latest
    view, updating a row only if it is the row version it was folded from (`read_as`, its xmin; None: there was no
    row, and one is inserted). Any row changed meanwhile, or any event tracked before, fails it whole
    (`require_applied`: serialization_failure), writing nothing."""
    params = {"c": CONSUMER, "message_ids": message_ids, "rows": _rows_json(views, read_as),
              "ids": [view["id"] for view, _ in views], "n_rows": len(views), "n_events": len(message_ids)}
    await statements.execute(
        f"WITH rows AS (SELECT * FROM {_ROWS}),"
        f" updated AS (UPDATE {SCHEMA}.predictions AS p SET stream_version = r.stream_version, status = r.status,"
        # `p.id = ANY(:ids)` reaches the rows by their key: a generic plan joining the document's rows alone may
        # scan the whole table.
        " view = r.view FROM rows AS r WHERE p.id = ANY(CAST(:ids AS text[])) AND p.id = r.id AND r.x IS NOT NULL"
        " AND p.xmin = CAST(r.x AS xid) RETURNING 1),"
        f" inserted AS (INSERT INTO {SCHEMA}.predictions (id, account, stream_version, status, created_at, view)"
        " SELECT id, account, stream_version, status, created_at, view FROM rows WHERE x IS NULL"
        " ON CONFLICT (id) DO NOTHING RETURNING 1),"
        f" tracked AS (INSERT INTO {SCHEMA}.tracking (consumer, message_id)"
        " SELECT :c, unnest(CAST(:message_ids AS text[])) ON CONFLICT DO NOTHING RETURNING 1)"
        f" SELECT {SCHEMA}.require_applied((SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted) = :n_rows"
        " AND (SELECT count(*) FROM tracked) = :n_events)",
        params,
    )


def _insert_rows_statement(views: list[tuple[dict[str, Any], int]]) -> tuple[str, dict[str, Any]]:
    """New rows; one that exists already is left as it is."""
    return f"{_INSERT_ROWS} ON CONFLICT (id) DO NOTHING", {"rows": _rows_json(views)}


async def _upsert(conn: Any, view: dict[str, Any], stream_version: int) -> None:
    await conn.execute(
        text(
            f"INSERT INTO {SCHEMA}.predictions (id, account, stream_version, status, created_at, view)"
            " VALUES (:id, :account, :v, :status, :created_at, CAST(:view AS jsonb)) ON CONFLICT (id)"
            " DO UPDATE SET stream_version = :v, status = :status, view = CAST(:view AS jsonb)"
        ),
        {
            "id": view["id"],
            "account": view.get("account") or "",
            "v": stream_version,
            "status": view["status"],
            "created_at": datetime.fromisoformat(view["created_at"]),
            "view": json.dumps({**view, "stream_version": stream_version}),
        },
    )


async def run_counts(engine: Any, models: list[str]) -> dict[str, int]:
    """How many predictions each `owner/name` has had (every status counts, as on Replicate)."""
    if not models:
        return {}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    f"SELECT view->>'model' AS model, count(*) AS runs FROM {SCHEMA}.predictions"
                    " WHERE view->>'model' = ANY(:models) GROUP BY view->>'model'"
                ),
                {"models": models},
            )
        ).all()
    return {row.model: row.runs for row in rows}


async def active_predictions_of_deployment(engine: Any, deployment: str) -> int:
    """Predictions made through `owner/name` that are still starting or processing."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                f"SELECT count(*) FROM {SCHEMA}.predictions WHERE view->>'deployment' = :deployment"
                f" AND status NOT IN ({_TERMINAL_SQL})"
            ),
            {"deployment": deployment},
        )
        return int(result.scalar() or 0)


async def active_predictions_of_version(engine: Any, version_id: str) -> int:
    async with engine.connect() as conn:
        result = await conn.execute(
            text(
                f"SELECT count(*) FROM {SCHEMA}.predictions WHERE view->>'version' = :version"
                f" AND status NOT IN ({_TERMINAL_SQL})"
            ),
            {"version": version_id},
        )
        return int(result.scalar() or 0)
