"""The event log against a real PostgreSQL and NATS JetStream: concurrency, outbox relay, tracking, rebuild."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from libs.bus.nats import Bus, connect
from libs.bus.relay import OutboxRelay
from libs.bus.subjects import StreamSpec
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.events import Envelope, new_event
from libs.eventstore import ConcurrencyError, EventStore, OutboxMessage
from libs.eventstore.projections import rebuild_from_log
from libs.eventstore.retry import retry_on_conflict


@pytest.fixture
async def schema(database_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    await migrate(database_url, name)
    return name


_OPENED: list[EventStore] = []


@pytest.fixture
async def engine(database_url: str):
    engine = create_engine(database_url, pool_size=4)
    yield engine
    while _OPENED:
        await _OPENED.pop().close()
    await engine.dispose()


@pytest.fixture
async def bus(nats_url: str):
    bus = await connect(nats_url, name="test")
    yield bus
    await bus.close()


def _store(engine, schema: str) -> EventStore:
    store = EventStore(engine, schema, subject_for=lambda event: f"{schema}.events.{event.type}")
    _OPENED.append(store)  # its connections are closed with the engine
    return store


async def _stream(bus: Bus, schema: str) -> StreamSpec:
    spec = StreamSpec(schema.upper(), (f"{schema}.events.>",))
    await bus.ensure_stream(spec)
    return spec


async def _messages(bus: Bus, spec: StreamSpec) -> list[Envelope]:
    info = await bus.js.stream_info(spec.name)
    result: list[Envelope] = []
    if info.state.messages == 0:
        return result
    for sequence in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await bus.js.get_msg(spec.name, sequence)
        result.append(Envelope.from_json(raw.data))
    return result


async def test_two_writers_racing_on_one_stream_one_wins(engine, schema: str) -> None:
    store = _store(engine, schema)
    gate = asyncio.Event()

    async def writer(label: str) -> str:
        async with store.transaction() as tx:
            await gate.wait()
            await tx.append("account-1", [new_event("account.opened", "account-1", {"by": label})], 0)
        return label

    tasks = [asyncio.create_task(writer("a")), asyncio.create_task(writer("b"))]
    await asyncio.sleep(0.05)
    gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)

    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, ConcurrencyError)]
    assert len(winners) == 1 and len(losers) == 1
    events = await store.read_stream("account-1")
    assert [e.data["by"] for e in events] == winners


async def test_stale_expected_version_is_refused_and_retry_reloads(engine, schema: str) -> None:
    store = _store(engine, schema)
    async with store.transaction() as tx:
        await tx.append("s", [new_event("thing.happened", "s", {"n": 1})], 0)
    with pytest.raises(ConcurrencyError):
        async with store.transaction() as tx:
            await tx.append("s", [new_event("thing.happened", "s", {"n": 2})], 0)

    async def append_next() -> None:
        async with store.transaction() as tx:
            version = await tx.stream_version("s")
            await tx.append("s", [new_event("thing.happened", "s", {"n": version + 1})], version)

    await asyncio.gather(*(retry_on_conflict(append_next) for _ in range(5)))
    events = await store.read_stream("s")
    assert [e.stream_version for e in events] == [1, 2, 3, 4, 5, 6]
    assert [e.data["n"] for e in events] == [1, 2, 3, 4, 5, 6]


async def test_events_committed_while_no_relay_runs_are_published_later(
    engine, schema: str, bus: Bus, database_url: str
) -> None:
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    for n in range(3):
        async with store.transaction() as tx:
            await tx.append("p-1", [new_event("thing.happened", "p-1", {"n": n})], n)
    assert await _messages(bus, spec) == []

    relay = OutboxRelay(schema, bus, database_url=database_url)
    assert await relay.drain() == 3

    published = await _messages(bus, spec)
    assert [e.data["n"] for e in published] == [0, 1, 2]

    async def outbox_rows() -> int:
        async with engine.connect() as conn:
            return (await conn.execute(text(f"SELECT count(*) FROM {schema}.outbox"))).scalar()

    # What went out is deleted by the relay's next statement (its next batch, poll or stop), not one of its own.
    assert await outbox_rows() == 3
    assert await relay.drain() == 0
    assert await outbox_rows() == 0
    async with store.transaction() as tx:
        await tx.append("p-1", [new_event("thing.happened", "p-1", {"n": 3})], 3)
    assert await relay.drain() == 1
    await relay.close()
    assert await outbox_rows() == 0
    assert [e.data["n"] for e in await _messages(bus, spec)] == [0, 1, 2, 3]


async def test_relay_killed_between_publish_and_delete_publishes_each_event_once(
    engine, schema: str, bus: Bus, database_url: str
) -> None:
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    async with store.transaction() as tx:
        await tx.append("p-2", [new_event("thing.happened", "p-2", {"n": n}) for n in range(4)], 0)

    class Killed(Exception):
        pass

    published: list[str] = []

    async def die_after_second(msg_id: str) -> None:
        published.append(msg_id)
        if len(published) == 2:
            raise Killed

    crashing = OutboxRelay(schema, bus, database_url=database_url, after_publish=die_after_second)
    with pytest.raises(Killed):
        await crashing.drain()

    survivor = OutboxRelay(schema, bus, database_url=database_url)
    assert await survivor.drain() == 4
    await survivor.close()

    events = await _messages(bus, spec)
    assert [e.data["n"] for e in events] == [0, 1, 2, 3]
    assert len({e.id for e in events}) == 4


async def test_one_relay_at_a_time_drains_a_schema_and_another_takes_over_when_it_goes(
    engine, schema: str, bus: Bus, database_url: str
) -> None:
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    holder = OutboxRelay(schema, bus, database_url=database_url)
    replica = OutboxRelay(schema, bus, database_url=database_url)
    try:
        async with store.transaction() as tx:
            await tx.append("p-4", [new_event("thing.happened", "p-4", {"n": 0})], 0)
        assert await holder.drain() == 1
        async with store.transaction() as tx:
            await tx.append("p-4", [new_event("thing.happened", "p-4", {"n": 1})], 1)
        # The holder keeps the lock between batches: the replica leaves the message to it.
        assert await replica.drain() == 0
        assert [e.data["n"] for e in await _messages(bus, spec)] == [0]

        await holder.close()  # e.g. its process died: the lock goes with its connection
        assert await replica.drain() == 1
        assert await holder.drain() == 0
        assert [e.data["n"] for e in await _messages(bus, spec)] == [0, 1]
    finally:
        await holder.close()
        await replica.close()


async def test_running_relay_publishes_right_after_commit(engine, schema: str, bus: Bus, database_url: str) -> None:
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    # A long poll interval proves delivery comes from the commit wake-up, not from polling.
    relay = OutboxRelay(schema, bus, database_url=database_url, poll_interval=30)
    store.set_on_commit(relay.wake)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(msg) -> None:
        await received.put(msg.data)

    subscription = await bus.nc.subscribe(f"{schema}.events.>", cb=collect)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await asyncio.sleep(0.1)
        async with store.transaction() as tx:
            await tx.append("p-3", [new_event("thing.happened", "p-3", {"n": 7})], 0)
        data = await asyncio.wait_for(received.get(), timeout=2)
        assert Envelope.from_json(data).data == {"n": 7}

        # A commit made by another process (no in-process wake-up) arrives through LISTEN/NOTIFY.
        other_store = _store(engine, schema)
        async with other_store.transaction() as tx:
            await tx.append("p-3", [new_event("thing.happened", "p-3", {"n": 8})], 1)
        data = await asyncio.wait_for(received.get(), timeout=2)
        assert Envelope.from_json(data).data == {"n": 8}
    finally:
        stop.set()
        await task
        await subscription.unsubscribe()
    assert len(await _messages(bus, spec)) == 2


async def _until(condition, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_commit_of_this_process_is_drained_once_whatever_its_notify_does(
    engine, schema: str, bus: Bus, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A commit of this process reaches the relay in-process: a hand-off publishes it with no drain, a wake-up
    drains it once. Its NOTIFY, which often arrives first, starts no drain of its own (a statement for nothing)."""
    from libs.bus import relay as relay_module

    monkeypatch.setattr(relay_module, "NOTIFY_GRACE", 0.3)  # a loaded machine still meets it
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    relay = OutboxRelay(schema, bus, database_url=database_url, poll_interval=30)
    store.set_on_commit(relay.wake)
    store.set_hand_off(relay.hand_off)
    drains: list[int] = []
    drain_batch = relay._drain_batch

    async def counted(conn) -> int:
        sent = await drain_batch(conn)
        drains.append(sent)
        return sent

    relay._drain_batch = counted  # type: ignore[method-assign]
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _until(lambda: drains == [0])  # the first drain, at start: it takes the lock
        async with store.one_statement(opens_streams=True) as unit:
            await unit.append("p-9", [new_event("thing.happened", "p-9", {"n": 0})], 0)
        await _until(lambda: not relay._handing_off)
        await asyncio.sleep(0.5)  # its NOTIFY has come and gone
        assert drains == [0]
        for n in (1, 2):
            async with store.one_statement() as unit:
                await unit.append("p-9", [new_event("thing.happened", "p-9", {"n": n})], n)
            await _until(lambda n=n: sum(drains) == n)
            await asyncio.sleep(0.5)
        assert drains == [0, 1, 1]
        assert [e.data["n"] for e in await _messages(bus, spec)] == [0, 1, 2]
    finally:
        stop.set()
        await task


async def test_tracking_makes_redelivery_a_no_op(engine, schema: str) -> None:
    store = _store(engine, schema)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {schema}.totals (id int PRIMARY KEY, total int NOT NULL)"))
        await conn.execute(text(f"INSERT INTO {schema}.totals VALUES (1, 0)"))

    async def handle(message_id: str, amount: int) -> None:
        async with store.transaction() as tx:
            if not await tx.track("totals", message_id):
                return
            await tx.conn.execute(text(f"UPDATE {schema}.totals SET total = total + :a"), {"a": amount})

    for _ in range(3):  # the same message delivered three times
        await handle("m-1", 5)
    await handle("m-2", 1)
    async with engine.connect() as conn:
        assert (await conn.execute(text(f"SELECT total FROM {schema}.totals"))).scalar() == 6


class CountsByType:
    name = "counts"
    tables = ("counts",)

    def __init__(self, schema: str) -> None:
        self.schema = schema

    async def apply(self, tx, event: Envelope) -> None:
        await tx.conn.execute(
            text(
                f"INSERT INTO {self.schema}.counts (type, n) VALUES (:t, 1)"
                " ON CONFLICT (type) DO UPDATE SET n = counts.n + 1"
            ),
            {"t": event.type},
        )


async def test_projection_rebuild_gives_the_same_state(engine, schema: str) -> None:
    store = _store(engine, schema)
    projection = CountsByType(schema)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {schema}.counts (type text PRIMARY KEY, n int NOT NULL)"))
    for n in range(10):
        async with store.transaction() as tx:
            event_type = "a.done" if n % 3 else "b.done"
            for stored in await tx.append(f"s-{n}", [new_event(event_type, f"s-{n}", {})], 0):
                await projection.apply(tx, stored)

    async def snapshot() -> list[tuple[str, int]]:
        async with engine.connect() as conn:
            rows = await conn.execute(text(f"SELECT type, n FROM {schema}.counts ORDER BY type"))
            return [tuple(row) for row in rows]

    before = await snapshot()
    async with engine.begin() as conn:
        await conn.execute(text(f"UPDATE {schema}.counts SET n = 0"))  # a corrupted read model
    assert await rebuild_from_log(store, [projection]) == 10
    assert await snapshot() == before == [("a.done", 6), ("b.done", 4)]


async def test_relay_keeps_each_streams_order_across_batches(engine, schema: str, bus: Bus, database_url: str) -> None:
    """More messages than one relay batch, three streams interleaved, committed in several transactions:
    JetStream holds them in commit order, so each stream's events arrive in version order."""
    from libs.bus.relay import BATCH

    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    per_stream = BATCH  # three streams of one batch each: the relay needs at least three batches
    for n in range(0, per_stream, 16):
        async with store.transaction() as tx:
            for stream in ("s-a", "s-b", "s-c"):
                events = [new_event("thing.happened", stream, {"n": k}) for k in range(n, n + 16)]
                await tx.append(stream, events, None)
    relay = OutboxRelay(schema, bus, database_url=database_url)
    assert await relay.drain() == 3 * per_stream
    await relay.close()

    published = await _messages(bus, spec)
    assert len(published) == 3 * per_stream
    for stream in ("s-a", "s-b", "s-c"):
        ours = [event for event in published if event.stream_id == stream]
        assert [event.data["n"] for event in ours] == list(range(per_stream))
        assert [event.stream_version for event in ours] == list(range(1, per_stream + 1))
    positions = [event.position for event in published]
    assert positions == sorted(positions)


async def test_one_statement_writes_events_outbox_and_other_rows_together_or_not_at_all(
    engine, schema: str, bus: Bus, database_url: str
) -> None:
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE TABLE {schema}.notes (id text PRIMARY KEY, note text, at timestamptz)"))
    notes = f"INSERT INTO {schema}.notes (id, note, at) VALUES (:id, :note, CAST(:at AS timestamptz))"

    async with store.one_statement() as unit:
        stored = await unit.append("p-5", [new_event("thing.happened", "p-5", {"n": n}) for n in range(2)], 0)
        # Two parts using the same parameter names, and a literal cast that is no parameter.
        await unit.also(notes, {"id": "a", "note": "first", "at": "2026-01-01T00:00:00+00:00"})
        await unit.also(notes.replace("CAST(:at AS timestamptz)", "'2026-01-01 00:00:00'::timestamptz"),
                        {"id": "b", "note": "second"})
    assert [(e.stream_version, e.data["n"]) for e in stored] == [(1, 0), (2, 1)]
    assert [(e.stream_version, e.data["n"]) for e in await store.read_stream("p-5")] == [(1, 0), (2, 1)]
    async with engine.connect() as conn:
        rows = (await conn.execute(text(f"SELECT id, note FROM {schema}.notes ORDER BY id"))).all()
    assert [tuple(row) for row in rows] == [("a", "first"), ("b", "second")]

    # A stale expected version refuses the whole unit: no event, no outbox message, no other row.
    with pytest.raises(ConcurrencyError):
        async with store.one_statement() as unit:
            await unit.append("p-5", [new_event("thing.happened", "p-5", {"n": 9})], 1)
            await unit.also(notes, {"id": "c", "note": "third", "at": "2026-01-01T00:00:00+00:00"})
    assert len(await store.read_stream("p-5")) == 2
    async with engine.connect() as conn:
        assert (await conn.execute(text(f"SELECT count(*) FROM {schema}.notes"))).scalar() == 2
        assert (await conn.execute(text(f"SELECT count(*) FROM {schema}.outbox"))).scalar() == 2

    relay = OutboxRelay(schema, bus, database_url=database_url)
    assert await relay.drain() == 2
    await relay.close()
    assert [e.data["n"] for e in await _messages(bus, spec)] == [0, 1]


async def _outbox_rows(engine, schema: str) -> int:
    async with engine.connect() as conn:
        return (await conn.execute(text(f"SELECT count(*) FROM {schema}.outbox"))).scalar()


async def test_messages_opening_new_streams_are_handed_off_before_the_unit_returns(
    engine, schema: str, bus: Bus, database_url: str
) -> None:
    """Published by the committing task itself, with no wake-up of the relay and no read of the outbox; the rows go
    with the relay's next statement once acknowledged, and a later batch does not publish them again."""
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    relay = OutboxRelay(schema, bus, database_url=database_url, poll_interval=30)
    woken: list[str] = []
    store.set_on_commit(lambda _positions: woken.append("commit"))
    store.set_hand_off(relay.hand_off)
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(msg) -> None:
        await received.put(msg.data)

    subscription = await bus.nc.subscribe(f"{schema}.events.>", cb=collect)
    try:
        assert await relay.drain() == 0  # takes the lock, as the running relay does first
        async with store.one_statement(opens_streams=True) as unit:
            await unit.append("p-6", [new_event("thing.happened", "p-6", {"n": n}) for n in range(2)], 0)
        assert woken == []
        first = await asyncio.wait_for(received.get(), timeout=2)
        second = await asyncio.wait_for(received.get(), timeout=2)
        assert [Envelope.from_json(data).data["n"] for data in (first, second)] == [0, 1]
        while relay._handing_off:  # the acks are awaited in the background
            await asyncio.sleep(0.01)
        assert await _outbox_rows(engine, schema) == 2

        # The next batch deletes them without publishing them again, and publishes what came after.
        async with store.one_statement() as unit:
            await unit.append("p-6", [new_event("thing.happened", "p-6", {"n": 2})], 2)
        assert woken == ["commit"]
        assert await relay.drain() == 1
        assert await relay.drain() == 0
        assert await _outbox_rows(engine, schema) == 0
        assert [e.data["n"] for e in await _messages(bus, spec)] == [0, 1, 2]
    finally:
        await subscription.unsubscribe()
        await relay.close()


async def test_a_relay_without_the_lock_or_a_failed_hand_off_leaves_the_messages_to_a_batch(
    engine, schema: str, bus: Bus, database_url: str
) -> None:
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    holder = OutboxRelay(schema, bus, database_url=database_url)
    replica = OutboxRelay(schema, bus, database_url=database_url)
    woken: list[str] = []
    store.set_on_commit(lambda _positions: woken.append("commit"))
    try:
        assert await holder.drain() == 0
        # A replica without the lock publishes nothing itself: the commit wakes the relay as usual.
        store.set_hand_off(replica.hand_off)
        async with store.one_statement(opens_streams=True) as unit:
            await unit.append("p-7", [new_event("thing.happened", "p-7", {"n": 0})], 0)
        assert woken == ["commit"]
        assert await _messages(bus, spec) == []
        assert await holder.drain() == 1

        # A subject no stream takes: JetStream refuses it, and the row stays for a batch to try again.
        store.set_hand_off(holder.hand_off)
        async with store.one_statement(opens_streams=True) as unit:
            await unit.enqueue(OutboxMessage(f"{schema}.nowhere", b"{}", "lost-1"))
            await unit.append("p-8", [new_event("thing.happened", "p-8", {"n": 0})], 0)
        while holder._handing_off:
            await asyncio.sleep(0.01)
        assert [e.data["n"] for e in await _messages(bus, spec)] == [0, 0]
        assert holder._wakeup.is_set()  # woken to retry
        # The batch publishes both again: the refused one fails again, the stored one is de-duplicated.
        with pytest.raises(Exception):  # noqa: B017, PT011 - whatever JetStream answers for a subject without a stream
            await holder.drain()
        assert await _outbox_rows(engine, schema) == 2
        assert len(await _messages(bus, spec)) == 2
    finally:
        await holder.close()
        await replica.close()


async def test_a_hand_off_cut_off_by_its_callers_cancellation_leaves_the_messages_to_a_batch(
    engine, schema: str, bus: Bus, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The create's caller gave up while its committed job was being handed off: the job still goes out."""
    spec = await _stream(bus, schema)
    store = _store(engine, schema)
    relay = OutboxRelay(schema, bus, database_url=database_url)
    store.set_hand_off(relay.hand_off)
    publishing = asyncio.Event()

    async def stalled_publish(message):  # noqa: ANN001, ANN202 - stands in for Bus.publish_unacknowledged
        publishing.set()
        await asyncio.Event().wait()

    try:
        assert await relay.drain() == 0
        monkeypatch.setattr(bus, "publish_unacknowledged", stalled_publish)

        async def create() -> None:
            async with store.one_statement(opens_streams=True) as unit:
                await unit.append("p-9", [new_event("thing.happened", "p-9", {"n": 0})], 0)

        task = asyncio.create_task(create())
        await asyncio.wait_for(publishing.wait(), timeout=2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert relay._handing_off == set()
        assert relay._wakeup.is_set()
        monkeypatch.undo()
        assert await relay.drain() == 1
        assert [e.data["n"] for e in await _messages(bus, spec)] == [0]
    finally:
        await relay.close()
