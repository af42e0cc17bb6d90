"""Single statements in autocommit straight on psycopg, for the hot path.

A statement through SQLAlchemy's async engine costs the calling process several hundred microseconds of CPU
beyond the query itself (the pool's checkout through a greenlet, the `text()` construct, its compilation and
result processing); straight on a psycopg pool it costs a fraction of that. The statements every prediction
runs (the scheduler's one-statement units of work and reads, the gateway's read-model reads and writes) go
through here; transactions and everything else stay on SQLAlchemy.

Statements are written with SQLAlchemy's `:name` parameters, so one text serves both paths.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from psycopg.rows import namedtuple_row
from psycopg_pool import AsyncConnectionPool

from libs.db.engine import libpq_url

_PARAMETER = re.compile(r"(?<![:\w]):(\w+)")


@lru_cache(maxsize=1024)
def psycopg_text(statement: str) -> str:
    """`:name` parameters as psycopg's `%(name)s` (a literal `%` doubled); `::type` casts are left alone."""
    return _PARAMETER.sub(r"%(\1)s", statement.replace("%", "%%"))


class Statements:
    """A small psycopg connection pool in autocommit: each call is one statement, a transaction of its own."""

    def __init__(self, database_url: str, *, max_size: int = 10) -> None:
        self._pool = AsyncConnectionPool(
            libpq_url(database_url), min_size=1, max_size=max_size, open=False,
            kwargs={"autocommit": True, "row_factory": namedtuple_row},
            # No check when a connection is handed out (a round trip per statement): one broken by a database
            # restart fails its statement, which the caller retries, and the pool replaces it.
        )
        self._opened = False

    async def open(self) -> None:
        if not self._opened:
            self._opened = True
            await self._pool.open(wait=False)

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self._pool.close()

    async def execute(self, statement: str, params: dict[str, Any] | None = None) -> None:
        await self.open()
        async with self._pool.connection() as conn:
            await conn.execute(psycopg_text(statement), params)

    async def fetch(self, statement: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every row, as named tuples (`row.column`)."""
        await self.open()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(psycopg_text(statement), params)
            return await cursor.fetchall()

    async def fetchone(self, statement: str, params: dict[str, Any] | None = None) -> Any | None:
        await self.open()
        async with self._pool.connection() as conn:
            cursor = await conn.execute(psycopg_text(statement), params)
            return await cursor.fetchone()
