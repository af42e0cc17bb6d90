"""PostgreSQL event store: events, outbox and tracking written in one transaction."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from libs.db.engine import autocommit
from libs.db.statements import PARAMETER, Statements
from libs.events import Envelope
from libs.eventstore.errors import AlreadyTracked, ConcurrencyError

SubjectFor = Callable[[Envelope], str | None]


@dataclass(frozen=True)
class OutboxMessage:
    """A message to publish once the transaction that wrote it commits."""

    subject: str
    payload: bytes
    msg_id: str
    headers: dict[str, str] = field(default_factory=dict)


# Publishes messages committed at these outbox positions at once; False when it cannot (see `one_statement`).
HandOff = Callable[[list[tuple[int, OutboxMessage]]], Awaitable[bool]]


def _row_to_envelope(row: Any) -> Envelope:
    return Envelope(
        id=str(row.event_id),
        type=row.type,
        schema_version=row.schema_version,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        position=row.position,
        occurred_at=row.occurred_at,
        data=row.data,
        metadata=row.metadata,
    )


class Transaction:
    """One unit of work against a service's schema."""

    def __init__(self, conn: AsyncConnection, schema: str, subject_for: SubjectFor) -> None:
        self.conn = conn
        self._schema = schema
        self._subject_for = subject_for
        self.appended: list[Envelope] = []
        self.enqueued = 0
        # Written in one multi-row insert when the transaction is about to commit (`flush`).
        self._outbox: list[OutboxMessage] = []

    async def stream_version(self, stream_id: str) -> int:
        result = await self.conn.execute(
            text(f"SELECT max(stream_version) FROM {self._schema}.events WHERE stream_id = :s"),
            {"s": stream_id},
        )
        return result.scalar() or 0

    async def append(
        self, stream_id: str, events: list[Envelope], expected_version: int | None
    ) -> list[Envelope]:
        """Append after `expected_version` (0 for a new stream, None for wherever the stream is now).

        A stale `expected_version` always collides with the `(stream_id, stream_version)` key, because
        version `expected_version + 1` then exists already; the database decides, so there is no race.
        """
        current = await self.stream_version(stream_id) if expected_version is None else expected_version
        versioned = [
            event.model_copy(update={"stream_id": stream_id, "stream_version": current + offset})
            for offset, event in enumerate(events, start=1)
        ]
        if not versioned:
            return []
        try:
            positions = await self._insert(versioned)
        except IntegrityError as exc:
            raise ConcurrencyError(stream_id, current, None) from exc
        stored = [
            event.model_copy(update={"position": position})
            for event, position in zip(versioned, positions, strict=True)
        ]
        for event in stored:
            subject = self._subject_for(event)
            if subject is not None:
                await self.enqueue(OutboxMessage(subject, event.to_json(), event.id, _trace_headers(event)))
        self.appended.extend(stored)
        return stored

    async def _insert(self, events: list[Envelope]) -> list[int]:
        statement, params = _insert_events(self._schema, events)
        result = await self.conn.execute(text(statement + " RETURNING position"), params)
        return sorted(int(position) for position in result.scalars())

    async def enqueue(self, message: OutboxMessage) -> None:
        """Add a message to publish once the transaction commits (written to the outbox by `flush`)."""
        self._outbox.append(message)
        self.enqueued += 1

    async def flush(self) -> None:
        """Write the enqueued messages to the outbox in one statement, in the order they were enqueued (a
        multi-row VALUES takes its positions in row order, which the relay publishes in)."""
        if not self._outbox:
            return
        messages, self._outbox = self._outbox, []
        statement, params = _insert_outbox(self._schema, messages)
        await self.conn.execute(text(statement), params)

    async def also(self, statement: str, params: dict[str, Any]) -> None:
        """A write of this unit of work (the same call a `OneStatement` takes)."""
        await self.conn.execute(text(statement), params)

    async def track(self, consumer: str, message_id: str) -> bool:
        """Record that `consumer` processed `message_id`; False when it already had (a redelivery)."""
        result = await self.conn.execute(
            text(
                f"INSERT INTO {self._schema}.tracking (consumer, message_id) VALUES (:c, :m)"
                " ON CONFLICT DO NOTHING"
            ),
            {"c": consumer, "m": message_id},
        )
        return result.rowcount == 1

    async def read_stream(self, stream_id: str) -> list[Envelope]:
        return await read_stream(self.conn, self._schema, stream_id)

    async def track_and_read_stream(
        self, consumer: str, message_id: str, stream_id: str
    ) -> tuple[bool, list[Envelope]]:
        """`track` and `read_stream` in one statement: whether the message is new to `consumer`, and the stream."""
        result = await self.conn.execute(
            text(
                f"WITH tracked AS (INSERT INTO {self._schema}.tracking (consumer, message_id) VALUES (:c, :m)"
                " ON CONFLICT DO NOTHING RETURNING 1)"
                f" SELECT (SELECT count(*) FROM tracked) AS fresh, e.* FROM (SELECT 1) AS one"
                f" LEFT JOIN {self._schema}.events AS e ON e.stream_id = :s ORDER BY e.stream_version"
            ),
            {"c": consumer, "m": message_id, "s": stream_id},
        )
        rows = result.all()
        fresh = bool(rows and rows[0].fresh)
        return fresh, [_row_to_envelope(row) for row in rows if row.event_id is not None]


def _insert_events(schema: str, events: list[Envelope]) -> tuple[str, dict[str, Any]]:
    """One multi-row INSERT of ``events`` (already versioned) and its parameters."""
    rows = [
        {
            "id": event.id,
            "stream_id": event.stream_id,
            "version": event.stream_version,
            "type": event.type,
            "schema_version": event.schema_version,
            "data": json.dumps(event.data),
            "metadata": event.metadata.model_dump_json(),
            "occurred_at": event.occurred_at,
        }
        for event in events
    ]
    params = {f"{key}{i}": value for i, row in enumerate(rows) for key, value in row.items()}
    return _insert_events_text(schema, len(rows)), params


@lru_cache(maxsize=256)
def _insert_events_text(schema: str, rows: int) -> str:
    values = ", ".join(
        f"(:id{i}, :stream_id{i}, :version{i}, :type{i}, :schema_version{i},"
        f" CAST(:data{i} AS jsonb), CAST(:metadata{i} AS jsonb), :occurred_at{i})"
        for i in range(rows)
    )
    return (
        f"INSERT INTO {schema}.events (event_id, stream_id, stream_version, type, schema_version, data, metadata,"
        f" occurred_at) VALUES {values}"
    )


@lru_cache(maxsize=1024)
def _prefixed(name: str, statement: str, names: frozenset[str]) -> str:
    """`statement` with each of its parameters in `names` renamed `<name>_<parameter>`. Units of work repeat a
    few shapes, so each is worked out once: the substitution was a tenth of a consumer's CPU."""
    def rename(match: re.Match[str]) -> str:
        return f":{name}_{match.group(1)}" if match.group(1) in names else match.group(0)

    return PARAMETER.sub(rename, statement)


def _insert_outbox(schema: str, messages: list[OutboxMessage]) -> tuple[str, dict[str, Any]]:
    """One multi-row INSERT of outbox ``messages``: a multi-row VALUES takes its positions in row order, which
    the relay publishes in."""
    params: dict[str, Any] = {}
    for i, message in enumerate(messages):
        params.update({f"m{i}": message.msg_id, f"s{i}": message.subject, f"p{i}": message.payload,
                       f"h{i}": json.dumps(message.headers)})
    return _insert_outbox_text(schema, len(messages)), params


@lru_cache(maxsize=256)
def _insert_outbox_text(schema: str, rows: int) -> str:
    values = ", ".join(f"(:m{i}, :s{i}, :p{i}, CAST(:h{i} AS jsonb))" for i in range(rows))
    return f"INSERT INTO {schema}.outbox (msg_id, subject, payload, headers) VALUES {values}"


class OneStatement:
    """A unit of work written as a single statement, which PostgreSQL applies atomically on its own: no BEGIN
    and COMMIT round trips around it.

    Appends (at an expected version), outbox messages and further writes (``also``) are kept until the unit
    ends and then written together, each a part of one `WITH` query. Nothing is read inside it: what a
    decision needs is read before, and the streams' expected versions still refuse a concurrent writer
    (`ConcurrencyError`). Appended events come back versioned, without their log positions.
    """

    def __init__(self, schema: str, subject_for: SubjectFor) -> None:
        self._schema = schema
        self._subject_for = subject_for
        self._events: list[Envelope] = []
        self._outbox: list[OutboxMessage] = []
        self._parts: list[tuple[str, dict[str, Any]]] = []

    async def append(self, stream_id: str, events: list[Envelope], expected_version: int) -> list[Envelope]:
        versioned = [
            event.model_copy(update={"stream_id": stream_id, "stream_version": expected_version + offset})
            for offset, event in enumerate(events, start=1)
        ]
        self._events.extend(versioned)
        for event in versioned:
            subject = self._subject_for(event)
            if subject is not None:
                await self.enqueue(OutboxMessage(subject, event.to_json(), event.id, _trace_headers(event)))
        return versioned

    async def enqueue(self, message: OutboxMessage) -> None:
        self._outbox.append(message)

    async def also(self, statement: str, params: dict[str, Any]) -> None:
        """Another write (INSERT, UPDATE or DELETE without RETURNING) of the same unit, with its own
        `:name` parameters."""
        self._parts.append((statement, params))

    async def track(self, consumer: str, message_id: str) -> None:
        """Record that `consumer` processed `message_id`: if it had already, the unit fails with
        `AlreadyTracked` and writes nothing (check before with a read; this catches a racing redelivery)."""
        await self.also(f"INSERT INTO {self._schema}.tracking (consumer, message_id) VALUES (:c, :m)",
                        {"c": consumer, "m": message_id})

    def _statement(self) -> tuple[str, dict[str, Any]]:
        parts: list[str] = []
        params: dict[str, Any] = {}

        def add(name: str, statement: str, part_params: dict[str, Any]) -> None:
            # Each part's parameters are renamed to its own prefix, so parts may reuse names.
            parts.append(f"{name} AS ({_prefixed(name, statement, frozenset(part_params))})")
            params.update({f"{name}_{key}": value for key, value in part_params.items()})

        if self._events:
            add("appended", *_insert_events(self._schema, self._events))
        if self._outbox:
            insert, outbox_params = _insert_outbox(self._schema, self._outbox)
            add("enqueued", f"{insert} RETURNING position", outbox_params)
        for i, (statement, part_params) in enumerate(self._parts):
            add(f"also{i}", statement, part_params)
        returned = "position FROM enqueued ORDER BY position" if self._outbox else "1"
        return f"WITH {', '.join(parts)} SELECT {returned}", params

    async def write(self, statements: Statements) -> list[tuple[int, OutboxMessage]]:
        """Write the unit; returns its outbox messages with the positions they were given."""
        if not (self._events or self._outbox or self._parts):
            return []
        statement, params = self._statement()
        try:
            rows = await statements.fetch(statement, params)
        except psycopg.IntegrityError as exc:
            table = exc.diag.table_name
            if table == "events" and self._events:
                first = self._events[0]
                raise ConcurrencyError(first.stream_id or "", (first.stream_version or 1) - 1, None) from exc
            if table == "tracking":
                raise AlreadyTracked(str(exc)) from exc
            raise
        if not self._outbox:
            return []
        # A multi-row VALUES takes its positions in row order (see `_insert_outbox`).
        return list(zip((row.position for row in rows), self._outbox, strict=True))


def _trace_headers(event: Envelope) -> dict[str, str]:
    traceparent = event.metadata.traceparent
    return {"traceparent": traceparent} if traceparent else {}


def _read_stream_statement(schema: str) -> str:
    return f"SELECT * FROM {schema}.events WHERE stream_id = :s ORDER BY stream_version"


async def read_stream(conn: AsyncConnection, schema: str, stream_id: str) -> list[Envelope]:
    result = await conn.execute(text(_read_stream_statement(schema)), {"s": stream_id})
    return [_row_to_envelope(row) for row in result]


class EventStore:
    """A service's event log; `on_commit` wakes the outbox relay so publishing adds no polling delay. It is told
    the outbox positions the commit wrote, when the writer knows them (`one_statement`; otherwise none)."""

    def __init__(
        self,
        engine: AsyncEngine,
        schema: str,
        *,
        subject_for: SubjectFor = lambda _event: None,
        on_commit: Callable[[Sequence[int]], None] | None = None,
        hand_off: HandOff | None = None,
    ) -> None:
        self.engine = engine
        # Single statements (reads, `one_statement`) need no BEGIN and COMMIT round trips around them; the hot
        # ones go straight to psycopg (`libs.db.statements`), sharing the engine's database.
        self.autocommit = autocommit(engine)
        url = engine.url.render_as_string(hide_password=False)
        self.statements = Statements(url, max_size=10)
        # For writes whose loss in a crash costs nothing (a read model's shortcut that the event it anticipates
        # overwrites, and that no acknowledgement depends on): their commits do not wait for the disk. No
        # connection is opened until one is used.
        self.shortcut_statements = Statements(url, max_size=4, synchronous_commit=False)
        self.schema = schema
        self._subject_for = subject_for
        self._on_commit = on_commit
        self._hand_off = hand_off

    def set_on_commit(self, callback: Callable[[Sequence[int]], None]) -> None:
        self._on_commit = callback

    def set_hand_off(self, hand_off: HandOff) -> None:
        self._hand_off = hand_off

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        async with self.engine.begin() as conn:
            tx = Transaction(conn, self.schema, self._subject_for)
            yield tx
            await tx.flush()
        if tx.enqueued and self._on_commit is not None:
            self._on_commit(())

    @asynccontextmanager
    async def one_statement(self, *, opens_streams: bool = False) -> AsyncIterator[OneStatement]:
        """A unit of work that writes without reading, as one statement (see `OneStatement`).

        `opens_streams`: its messages are the first of their streams (a new prediction's first event, its job),
        so nothing of theirs can wait in the outbox ahead of them: they are handed to the relay (`hand_off`) and
        published before this returns, rather than after a read of the outbox."""
        unit = OneStatement(self.schema, self._subject_for)
        yield unit
        enqueued = await unit.write(self.statements)
        if not enqueued:
            return
        if opens_streams and self._hand_off is not None and await self._hand_off(enqueued):
            return
        if self._on_commit is not None:
            self._on_commit([position for position, _ in enqueued])

    async def read_stream(self, stream_id: str) -> list[Envelope]:
        rows = await self.statements.fetch(_read_stream_statement(self.schema), {"s": stream_id})
        return [_row_to_envelope(row) for row in rows]

    async def close(self) -> None:
        """Close the store's own connections (the engine is its owner's to dispose of)."""
        await self.statements.close()
        await self.shortcut_statements.close()

    async def read_all(self, after: int = 0, limit: int = 1000) -> list[Envelope]:
        async with self.autocommit.connect() as conn:
            result = await conn.execute(
                text(
                    f"SELECT * FROM {self.schema}.events WHERE position > :after"
                    " ORDER BY position LIMIT :limit"
                ),
                {"after": after, "limit": limit},
            )
            return [_row_to_envelope(row) for row in result]

    async def iterate_all(self, batch: int = 1000) -> AsyncIterator[Envelope]:
        after = 0
        while events := await self.read_all(after, batch):
            for event in events:
                yield event
            after = events[-1].position or after
