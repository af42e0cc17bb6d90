"""Outbox relay: publishes committed messages to JetStream in commit order, then deletes them.

Woken three ways: in-process right after a commit (the hot path, no polling delay), by PostgreSQL
LISTEN/NOTIFY when another process commits, and by a slow poll as the safety net. One relay at a time
drains a schema: the holder of a session advisory lock on a connection of its own, so messages of one stream
are never reordered. Holding the lock for as long as the connection lives makes a batch two statements (read,
then delete what was published) instead of a locking transaction of five; a replica that does not hold it
leaves its commits to the holder, which LISTEN/NOTIFY wakes, and takes over within a poll interval when the
holder's connection goes. A relay killed after publishing but before deleting re-publishes with the same
`Nats-Msg-Id`, which JetStream drops.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable

import psycopg

from libs.bus.nats import Bus, Publication
from libs.db.engine import libpq_url

log = logging.getLogger(__name__)

BATCH = 256


class OutboxRelay:
    def __init__(
        self,
        schema: str,
        bus: Bus,
        *,
        database_url: str,
        poll_interval: float = 1.0,
        after_publish: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._schema = schema
        self._bus = bus
        self._database_url = database_url
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._recently_published: collections.deque[int] = collections.deque(maxlen=4096)
        self._recently_published_set: set[int] = set()
        self._lock_key = zlib.crc32(f"cogwheel-outbox-{schema}".encode())
        self._conn: psycopg.AsyncConnection | None = None
        self._locked = False
        self._lock_refused_at = float("-inf")
        # Published, to be deleted by the next batch's statement (or on close).
        self._published: list[int] = []
        # Test hook: lets a test kill the relay between publish and delete.
        self._after_publish = after_publish

    def wake(self) -> None:
        self._wakeup.set()

    async def drain(self) -> int:
        """Publish everything pending; returns how many messages went out (0 while another relay holds the lock)."""
        total = 0
        try:
            conn = await self._locked_connection()
            if conn is None:
                return 0
            while True:
                sent = await self._drain_batch(conn)
                total += sent
                if sent < BATCH:
                    return total
        except BaseException:
            # Whatever failed, the lock goes with the connection: another relay (or this one, reconnected)
            # starts again from what is still in the outbox.
            await self.close()
            raise

    async def _locked_connection(self) -> psycopg.AsyncConnection | None:
        """This relay's connection while it holds the schema's relay lock; None while another relay holds it."""
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(libpq_url(self._database_url), autocommit=True)
            # Losing a delete in a crash only means publishing again, which JetStream de-duplicates.
            await self._conn.execute("SET synchronous_commit = off")
            self._locked = False
        if not self._locked:
            cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_key,))
            row = await cursor.fetchone()
            self._locked = bool(row and row[0])
            if not self._locked:
                self._lock_refused_at = time.monotonic()
        return self._conn if self._locked else None

    async def close(self) -> None:
        """Delete what was published and not yet deleted, and give the lock up (with the connection)."""
        conn, locked, self._conn, self._locked = self._conn, self._locked, None, False
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                if locked and self._published:
                    await conn.execute(f"DELETE FROM {self._schema}.outbox WHERE position = ANY(%s)",
                                       (self._published,))
                    self._published = []
            with contextlib.suppress(Exception):
                if locked:
                    # At once, rather than whenever the server gets round to ending the session.
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
            with contextlib.suppress(Exception):
                await conn.close()

    async def _drain_batch(self, conn: psycopg.AsyncConnection) -> int:
        # The rows the previous batch published are deleted by the statement that reads the next one: a batch
        # is one round trip. Rows of a transaction that committed meanwhile with a lower position (positions are
        # taken before commit) are read by it too; only what went out is deleted.
        cursor = await conn.execute(
            f"WITH published AS (DELETE FROM {self._schema}.outbox WHERE position = ANY(%(published)s))"
            f" SELECT position, msg_id, subject, payload, headers FROM {self._schema}.outbox"
            " WHERE position <> ALL(%(published)s) ORDER BY position LIMIT %(n)s",
            {"published": self._published, "n": BATCH},
        )
        self._published = []
        rows = await cursor.fetchall()
        if not rows:
            return 0
        # The whole batch goes out before any ack is awaited (one round trip, not one per message).
        await self._bus.publish_many(
            [Publication(subject, bytes(payload), msg_id, headers or {})
             for _, msg_id, subject, payload, headers in rows]
        )
        for position, msg_id, *_ in rows:
            if self._after_publish is not None:
                await self._after_publish(msg_id)
            self._remember(position)
        self._published = [position for position, *_ in rows]
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
                    # A replica without the lock asks for it once per poll interval, not on every commit of its own.
                    if self._locked or time.monotonic() - self._lock_refused_at >= self._poll_interval:
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
            await self.close()

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
