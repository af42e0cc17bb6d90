"""Outbox relay: publishes committed messages to JetStream in commit order, then deletes them.

Woken three ways: in-process right after a commit (the hot path, no polling delay), by PostgreSQL
LISTEN/NOTIFY when another process commits, and by a slow poll as the safety net. One relay at a time
drains a schema: the holder of a session advisory lock on a connection of its own, so messages of one stream
are never reordered. Holding the lock for as long as the connection lives makes a batch two statements (read,
then delete what was published) instead of a locking transaction of five; a replica that does not hold it
leaves its commits to the holder, which LISTEN/NOTIFY wakes, and takes over within a poll interval when the
holder's connection goes. A relay killed after publishing but before deleting re-publishes with the same
`Nats-Msg-Id`, which JetStream drops.

Messages that open new streams (a new prediction's first event and its job) need no read of the outbox at all:
the committing task hands them over (`hand_off`) and they go out at once, before it answers its caller. Nothing
of theirs can be waiting in the outbox ahead of them, so no order is broken; their rows are deleted by the
next batch's statement once JetStream has acknowledged them, and a hand-off that fails leaves them to a batch.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import psycopg

from libs.bus.nats import Bus, Publication
from libs.db.engine import libpq_url

log = logging.getLogger(__name__)

BATCH = 256
# How long a handed-off message's ack is awaited before it is left to a batch (published again, de-duplicated).
HAND_OFF_ACK_TIMEOUT = 5.0
# How long a NOTIFY waits before it wakes the relay. A commit of this process reaches the relay in-process (its
# wake-up or hand-off names its positions), but its NOTIFY comes on another connection and often first: given
# this moment, the committer has said so and the NOTIFY starts no drain of its own (a statement for nothing).
NOTIFY_GRACE = 0.005


class Outgoing(Protocol):
    """An outbox message as its writer holds it (`libs.eventstore.OutboxMessage`)."""

    @property
    def subject(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def msg_id(self) -> str: ...
    @property
    def headers(self) -> dict[str, str]: ...


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
        # Outbox positions this relay published, handed off or was woken in-process for: their NOTIFYs are ignored.
        self._recently_drained: collections.deque[int] = collections.deque(maxlen=4096)
        self._recently_drained_set: set[int] = set()
        self._lock_key = zlib.crc32(f"cogwheel-outbox-{schema}".encode())
        self._conn: psycopg.AsyncConnection | None = None
        self._locked = False
        self._lock_refused_at = float("-inf")
        # Published, to be deleted by the next batch's statement (or on close).
        self._published: list[int] = []
        # Handed off: acknowledged (deleted like `_published`), and still awaiting their acks (not read again).
        self._handed_off: list[int] = []
        self._handing_off: set[int] = set()
        self._ack_waits: set[asyncio.Task[None]] = set()
        # Test hook: lets a test kill the relay between publish and delete.
        self._after_publish = after_publish

    def wake(self, committed: Sequence[int] = ()) -> None:
        """Drain now. `committed`: outbox positions this process has just committed, which this wake-up drains:
        their NOTIFY, arriving while the drain runs, then starts no second one."""
        for position in committed:
            self._remember(position)
        self._wakeup.set()

    async def hand_off(self, messages: Sequence[tuple[int, Outgoing]]) -> bool:
        """Publish messages committed just now at these outbox positions, without reading the outbox: only the
        first messages of new streams may come here (see the module's docstring). Returns False, publishing
        nothing, when this relay does not hold the schema's lock; the caller then wakes it as for any commit."""
        if not self._locked or self._conn is None or self._conn.closed:
            return False
        positions = [position for position, _ in messages]
        for position in positions:
            self._remember(position)  # their NOTIFY needs no batch
        self._handing_off.update(positions)
        try:
            acks = [
                await self._bus.publish_unacknowledged(
                    Publication(message.subject, bytes(message.payload), message.msg_id, message.headers or {}))
                for _, message in messages
            ]
        except BaseException as exc:
            # The rows are committed: a batch publishes them instead. Also when the committing task was cancelled
            # midway (its caller gave up), or they would stay marked as handed off and never go out.
            self._handing_off.difference_update(positions)
            self.wake()
            if not isinstance(exc, Exception):
                raise
            log.warning("handing off %d outbox messages failed; a batch publishes them", len(positions), exc_info=True)
            return True
        waiting = asyncio.create_task(self._await_acks(positions, acks))
        self._ack_waits.add(waiting)
        waiting.add_done_callback(self._ack_waits.discard)
        return True

    async def _await_acks(self, positions: list[int], acks: list[asyncio.Future[Any]]) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*acks), HAND_OFF_ACK_TIMEOUT)
            self._handed_off.extend(positions)
        except Exception:  # noqa: BLE001 - left to a batch, which publishes them again (de-duplicated)
            log.warning("no ack for %d handed-off outbox messages; a batch publishes them", len(positions),
                        exc_info=True)
            self.wake()
        finally:
            self._handing_off.difference_update(positions)

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
                published = self._take_published()
                if locked and published:
                    await conn.execute(f"DELETE FROM {self._schema}.outbox WHERE position = ANY(%s)",
                                       (published,))
            with contextlib.suppress(Exception):
                if locked:
                    # At once, rather than whenever the server gets round to ending the session.
                    await conn.execute("SELECT pg_advisory_unlock(%s)", (self._lock_key,))
            with contextlib.suppress(Exception):
                await conn.close()

    def _take_published(self) -> list[int]:
        published, self._published, self._handed_off = self._published + self._handed_off, [], []
        return published

    async def _drain_batch(self, conn: psycopg.AsyncConnection) -> int:
        # The rows the previous batch published (and handed-off ones acknowledged since) are deleted by the
        # statement that reads the next one: a batch is one round trip. Rows of a transaction that committed
        # meanwhile with a lower position (positions are taken before commit) are read by it too; only what went
        # out is deleted. Handed-off rows still awaiting their acks are not read.
        handed_off = len(self._handed_off)
        published = self._published + self._handed_off
        cursor = await conn.execute(
            f"WITH published AS (DELETE FROM {self._schema}.outbox WHERE position = ANY(%(published)s))"
            f" SELECT position, msg_id, subject, payload, headers FROM {self._schema}.outbox"
            " WHERE position <> ALL(%(skipped)s) ORDER BY position LIMIT %(n)s",
            {"published": published, "skipped": published + sorted(self._handing_off), "n": BATCH},
        )
        # Deleted; acks that arrived during the statement are deleted by the next one.
        self._published = []
        del self._handed_off[:handed_off]
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
        if len(self._recently_drained) == self._recently_drained.maxlen:
            self._recently_drained_set.discard(self._recently_drained[0])
        self._recently_drained.append(position)
        self._recently_drained_set.add(position)

    def _on_notify(self, payload: str) -> None:
        try:
            position = int(payload)
        except ValueError:
            self._wakeup.set()
            return
        asyncio.get_running_loop().call_later(NOTIFY_GRACE, self._wake_unless_known, position)

    def _wake_unless_known(self, position: int) -> None:
        if position not in self._recently_drained_set:  # else our own commit, published or being drained
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
            if self._ack_waits:
                await asyncio.gather(*self._ack_waits, return_exceptions=True)
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
