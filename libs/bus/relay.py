"""Outbox relay: publishes committed messages to JetStream in commit order, then deletes them.

Woken three ways: in-process right after a commit (the hot path, no polling delay), by PostgreSQL
LISTEN/NOTIFY when another process commits, and by a slow poll as the safety net. One relay at a time
drains a schema (transaction-scoped advisory lock), so messages of one stream are never reordered; a relay
killed after publishing but before deleting re-publishes with the same `Nats-Msg-Id`, which JetStream drops.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import zlib
from collections.abc import Awaitable, Callable

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.bus.nats import Bus, Publication
from libs.db.engine import libpq_url

log = logging.getLogger(__name__)

BATCH = 256


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        schema: str,
        bus: Bus,
        *,
        database_url: str,
        poll_interval: float = 1.0,
        after_publish: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._schema = schema
        self._bus = bus
        self._database_url = database_url
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._recently_published: collections.deque[int] = collections.deque(maxlen=4096)
        self._recently_published_set: set[int] = set()
        self._lock_key = zlib.crc32(f"cogwheel-outbox-{schema}".encode())
        # Test hook: lets a test kill the relay between publish and delete.
        self._after_publish = after_publish

    def wake(self) -> None:
        self._wakeup.set()

    async def drain(self) -> int:
        """Publish everything pending; returns how many messages went out."""
        total = 0
        while True:
            sent = await self._drain_batch()
            total += sent
            if sent < BATCH:
                return total

    async def _drain_batch(self) -> int:
        async with self._engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": self._lock_key})
            # Deleted up front and published before the commit: a failed publish rolls the delete back.
            rows = (
                await conn.execute(
                    text(
                        f"DELETE FROM {self._schema}.outbox WHERE position IN ("
                        f" SELECT position FROM {self._schema}.outbox ORDER BY position LIMIT :n)"
                        " RETURNING position, msg_id, subject, payload, headers"
                    ),
                    {"n": BATCH},
                )
            ).all()
            ordered = sorted(rows, key=lambda r: r.position)
            # The whole batch goes out before any ack is awaited (one round trip, not one per message).
            await self._bus.publish_many(
                [Publication(row.subject, bytes(row.payload), row.msg_id, row.headers or {}) for row in ordered]
            )
            for row in ordered:
                if self._after_publish is not None:
                    await self._after_publish(row.msg_id)
                self._remember(row.position)
            if rows:
                # Losing this commit in a crash only means publishing again, which JetStream de-duplicates.
                await conn.execute(text("SET LOCAL synchronous_commit = off"))
            return len(rows)

    def _remember(self, position: int) -> None:
        if len(self._recently_published) == self._recently_published.maxlen:
            self._recently_published_set.discard(self._recently_published[0])
        self._recently_published.append(position)
        self._recently_published_set.add(position)

    def _on_notify(self, payload: str) -> None:
        try:
            if int(payload) in self._recently_published_set:
                return  # our own commit, already published
        except ValueError:
            pass
        self._wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        listener = asyncio.create_task(self._listen(stop))
        waker = asyncio.create_task(self._wake_on(stop))
        try:
            while not stop.is_set():
                try:
                    await self.drain()
                except Exception:  # noqa: BLE001 - the relay must outlive NATS or database hiccups
                    log.exception("outbox relay for %s failed; retrying", self._schema)
                    await asyncio.sleep(self._poll_interval)
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=self._poll_interval)
                except TimeoutError:
                    pass
                self._wakeup.clear()
        finally:
            listener.cancel()
            waker.cancel()
            await asyncio.gather(listener, waker, return_exceptions=True)

    async def _wake_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._wakeup.set()

    async def _listen(self, stop: asyncio.Event) -> None:
        channel = f"{self._schema}_outbox"
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(self._database_url), autocommit=True
                ) as conn:
                    await conn.execute(f'LISTEN "{channel}"')
                    async for notification in conn.notifies():
                        self._on_notify(notification.payload)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - fall back on polling until LISTEN works again
                log.warning("LISTEN on %s lost; relying on polling", channel, exc_info=True)
                await asyncio.sleep(self._poll_interval)
