"""Single statements in autocommit straight on psycopg, for the hot path.

A statement through SQLAlchemy's async engine costs the calling process several hundred microseconds of CPU
beyond the query itself (the pool's checkout through a greenlet, the `text()` construct, its compilation and
result processing); straight on psycopg it costs a fraction of that. The statements every prediction runs
(the scheduler's one-statement units of work and reads, the gateway's read-model reads and writes) go
through here; transactions and everything else stay on SQLAlchemy.

Statements are written with SQLAlchemy's `:name` parameters, so one text serves both paths. Here they are sent
with PostgreSQL's own `$n` placeholders, each text translated once (`positional`), on psycopg's raw cursors:
psycopg's own `%(name)s` parameters are parsed again at every execution of a statement longer than 4 KiB or
with more than 50 parameters (a batch's write), and looked up and reordered at every other one.

The connections are kept in a small pool of our own rather than psycopg_pool's: that one creates connections
in the background, retrying with a growing backoff, and makes callers wait for them, so while the database is
down a statement hangs for the pool's timeout and after it is back the pool may take seconds to notice. Here,
as with SQLAlchemy's pool, a statement fails at once while the database cannot be reached (the caller answers
503 or retries), a connection error drops every idle connection (they went down together), and the next
statement connects anew. A connection that sat idle for a second or more is checked (an empty query) before
it is used, so the first statement after the database restarted does not fail on a connection it closed.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import namedtuple_row

from libs.db.engine import libpq_url

# A `:name` parameter as SQLAlchemy's `text()` writes it (not the `::` of a cast).
PARAMETER = re.compile(r"(?<![:\w]):(\w+)")

Connection = psycopg.AsyncConnection[Any]

# A connection idle this long is checked before it is used again.
CHECK_IDLE_AFTER = 1.0


@lru_cache(maxsize=1024)
def positional(statement: str) -> tuple[str, tuple[str, ...]]:
    """`:name` parameters as PostgreSQL's `$n` (one number per name, in order of first use), and the names in
    that order; `::type` casts are left alone."""
    numbers: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        return f"${numbers.setdefault(match.group(1), len(numbers) + 1)}"

    return PARAMETER.sub(number, statement), tuple(numbers)


def _bound(statement: str, params: dict[str, Any] | None) -> tuple[str, list[Any] | None]:
    """The statement as sent, and its parameters in its placeholders' order (a missing one is a `KeyError`)."""
    text, names = positional(statement)
    if not names:
        return text, None
    if params is None:
        raise KeyError(names[0])
    return text, [params[name] for name in names]


class Statements:
    """Up to `max_size` psycopg connections in autocommit: each call is one statement, a transaction of its own."""

    def __init__(self, database_url: str, *, max_size: int = 10, synchronous_commit: bool = True) -> None:
        self._conninfo = libpq_url(database_url)
        # Off only for writes that something durable repeats anyway (see `EventStore.shortcut_statements`).
        if not synchronous_commit:
            self._conninfo = psycopg.conninfo.make_conninfo(self._conninfo, options="-c synchronous_commit=off")
        # Idle connections with when each was put back, the most recently used last (taken first).
        self._idle: list[tuple[Connection, float]] = []
        self._slots = asyncio.Semaphore(max_size)
        # Bumped by a connection error: connections handed out before it are not taken back.
        self._generation = 0
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        await self._drop_idle()

    async def execute(self, statement: str, params: dict[str, Any] | None = None) -> None:
        async with self._connection() as conn:
            await conn.execute(*_bound(statement, params))

    async def fetch(self, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every row, as named tuples (`row.column`)."""
        async with self._connection() as conn:
            cursor = await conn.execute(*_bound(statement, params))
            return await cursor.fetchall()

    async def fetchone(self, statement: str, params: dict[str, Any] | None = None) -> Any | None:
        async with self._connection() as conn:
            cursor = await conn.execute(*_bound(statement, params))
            return await cursor.fetchone()

    async def _take(self) -> Connection:
        """An idle connection, else a new one. One that sat idle a while is checked first (a round trip): the
        database may have restarted meanwhile, and under load connections are reused within milliseconds."""
        while self._idle:
            conn, idle_since = self._idle.pop()
            if time.monotonic() - idle_since < CHECK_IDLE_AFTER:
                return conn
            try:
                await conn.execute("")
                return conn
            except psycopg.Error:
                # Gone stale with the database: so did the ones idle longer.
                self._generation += 1
                await self._drop_idle()
                await conn.close()
        return await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True, row_factory=namedtuple_row,
                                                     cursor_factory=psycopg.AsyncRawCursor)

    async def _drop_idle(self) -> None:
        stale, self._idle = self._idle, []
        for conn, _ in stale:
            await conn.close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[StatementTransaction]:
        """Several statements on one connection, committed together (rolled back by an exception)."""
        async with self._connection() as conn, conn.transaction():
            yield StatementTransaction(conn)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        async with self._slots:
            if self._closed:
                raise psycopg.InterfaceError("the statement pool is closed")
            conn = await self._take()
            generation = self._generation
            reusable = False
            try:
                yield conn
                reusable = True
            except psycopg.OperationalError as exc:
                if _statement_failed(exc):
                    reusable = True
                    raise
                # The database went away or restarted: the idle connections are as stale as this one.
                self._generation += 1
                await self._drop_idle()
                raise
            except Exception:
                # A statement's own error (a unique violation, ...) or the caller's: the connection is taken back
                # if it is idle again (a transaction rolled back), checked below. A cancellation is not caught
                # here: a statement cut off midway leaves its connection busy, so it is closed.
                reusable = True
                raise
            finally:
                if (reusable and not self._closed and generation == self._generation and not conn.broken
                        and conn.info.transaction_status == TransactionStatus.IDLE):
                    self._idle.append((conn, time.monotonic()))
                else:
                    await conn.close()


# OperationalErrors that say nothing of the connection: a serialization failure or deadlock (class 40), a lock not
# available, a statement cancelled or timed out. The statement or transaction rolled back and the connection is
# idle again, so it is taken back (and the idle ones are kept) as after any other error of a statement.
_STATEMENT_SQLSTATES = ("40", "55P03", "57014")


def _statement_failed(exc: psycopg.OperationalError) -> bool:
    return (exc.sqlstate or "").startswith(_STATEMENT_SQLSTATES)


class StatementTransaction:
    """The statements of one `Statements.transaction`."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def execute(self, statement: str, params: dict[str, Any] | None = None) -> None:
        await self._conn.execute(*_bound(statement, params))

    async def fetch(self, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
        cursor = await self._conn.execute(*_bound(statement, params))
        return await cursor.fetchall()

    async def fetchone(self, statement: str, params: dict[str, Any] | None = None) -> Any | None:
        cursor = await self._conn.execute(*_bound(statement, params))
        return await cursor.fetchone()
