"""Batched consumption against a real NATS JetStream and PostgreSQL: a batch is applied in one transaction, a
poison message is set apart without holding up the rest, and a half-applied batch is never seen."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from libs.bus.consumer import ReceivedMessage, Retry, run_batch_consumer
from libs.bus.nats import Bus, Publication, connect
from libs.bus.subjects import StreamSpec
from libs.db import create_engine
from libs.db.coalesce import Coalesced
from libs.db.migrations import migrate
from libs.events import Envelope, new_event
from libs.eventstore import EventStore
from libs.predictions import apply_event
from libs.testing.polling import wait_until
from services.gateway.bootstrap import MIGRATIONS as GATEWAY_MIGRATIONS
from services.gateway.projection import SCHEMA as GATEWAY_SCHEMA
from services.gateway.projection import Outcome, PredictionProjection


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    connected = await connect(nats_url, name="batched-consumer-test")
    yield connected
    await connected.close()


@pytest.fixture
async def spec(bus: Bus) -> StreamSpec:
    name = f"b_{uuid.uuid4().hex[:10]}"
    stream = StreamSpec(name.upper(), (f"{name}.>",))
    await bus.ensure_stream(stream)
    return stream


async def _publish(bus: Bus, spec: StreamSpec, payloads: list[bytes]) -> None:
    prefix = spec.subjects[0].removesuffix(">")
    await bus.publish_many([Publication(f"{prefix}m", data, uuid.uuid4().hex) for data in payloads])


async def _consume(bus: Bus, spec: StreamSpec, handler: Any, stop: asyncio.Event, **options: Any) -> asyncio.Task:
    return asyncio.create_task(run_batch_consumer(
        bus, stream=spec.name, durable="batched", subject=spec.subjects[0], handler=handler, stop=stop, **options))


async def test_one_poison_message_is_given_up_on_alone_and_the_rest_of_its_batch_goes_through(
    bus: Bus, spec: StreamSpec
) -> None:
    applied: list[bytes] = []
    batches: list[int] = []
    given_up: list[bytes] = []

    async def handler(messages: list[ReceivedMessage]) -> list[Retry | None]:
        batches.append(len(messages))
        if any(message.data == b"poison" for message in messages):
            raise ValueError("cannot apply this batch")  # as a failed transaction: nothing of it applied
        applied.extend(message.data for message in messages)
        return [None] * len(messages)

    async def give_up(message: ReceivedMessage, _reason: BaseException) -> None:
        given_up.append(message.data)

    payloads = [b"one", b"two", b"poison", b"three", b"four"]
    await _publish(bus, spec, payloads)
    stop = asyncio.Event()
    task = await _consume(bus, spec, handler, stop, max_deliver=3, on_give_up=give_up)
    try:
        async def poison_set_apart() -> bool:
            return given_up == [b"poison"]

        await wait_until(poison_set_apart, timeout=30)
        assert sorted(applied) == sorted(p for p in payloads if p != b"poison")
        assert len(applied) == 4, "each good message is applied once"
        assert batches[0] == 5, "what had arrived was handed over as one batch"
        info = await bus.js.consumer_info(spec.name, "batched")
        assert info.num_pending == 0 and info.num_ack_pending == 0
    finally:
        stop.set()
        await task


async def test_a_message_the_handler_says_to_retry_comes_back_and_the_others_are_acknowledged(
    bus: Bus, spec: StreamSpec
) -> None:
    seen: list[tuple[bytes, int]] = []

    async def handler(messages: list[ReceivedMessage]) -> list[Retry | None]:
        seen.extend((message.data, message.num_delivered) for message in messages)
        return [Retry("not yet", delay=0.05) if m.data == b"later" and m.num_delivered < 3 else None for m in messages]

    await _publish(bus, spec, [b"now", b"later"])
    stop = asyncio.Event()
    task = await _consume(bus, spec, handler, stop)
    try:
        async def third_delivery() -> bool:
            return (b"later", 3) in seen

        await wait_until(third_delivery, timeout=30)
        assert [delivery for data, delivery in seen if data == b"now"] == [1]
    finally:
        stop.set()
        await task


@pytest.fixture
async def projection(database_url: str) -> AsyncIterator[PredictionProjection]:
    await migrate(database_url, GATEWAY_SCHEMA, GATEWAY_MIGRATIONS)
    engine = create_engine(database_url)
    store = EventStore(engine, GATEWAY_SCHEMA)
    yield PredictionProjection(store)
    await store.close()
    await engine.dispose()


def _lifecycle(prediction_id: str) -> list[Envelope]:
    stream = f"prediction-{prediction_id}"
    created = new_event("prediction.created", stream, {
        "id": prediction_id, "model": "alice/hello", "version": "a" * 64, "input": {"text": "world"},
        "account": "alice", "created_at": "2026-01-01T00:00:00+00:00"})
    started = new_event("prediction.started", stream, {"id": prediction_id, "started_at": "2026-01-01T00:00:01+00:00"})
    succeeded = new_event("prediction.succeeded", stream, {
        "id": prediction_id, "output": "hello world", "logs": "", "started_at": "2026-01-01T00:00:01+00:00",
        "completed_at": "2026-01-01T00:00:02+00:00", "predict_time": 1.0})
    return [event.model_copy(update={"stream_version": n}) for n, event in enumerate((created, started, succeeded), 1)]


async def test_the_read_model_applies_a_batch_in_stream_order_and_leaves_gaps_for_later(
    projection: PredictionProjection,
) -> None:
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    a, b = _lifecycle(first), _lifecycle(second)
    # `b`'s start arrives before its creation: a gap, applied once the creation is in.
    outcomes = await projection.apply_batch([a[0], b[1], a[1], a[0]])
    assert outcomes == [Outcome.APPLIED, Outcome.GAP, Outcome.APPLIED, Outcome.DUPLICATE]
    assert (await projection.get(first))["status"] == "processing"
    assert await projection.get(second) is None

    assert await projection.apply_batch([b[0], b[1], b[2], a[2]]) == [Outcome.APPLIED] * 4
    assert (await projection.get(second))["status"] == "succeeded"
    assert (await projection.get(first))["output"] == "hello world"
    # Everything again, as after a redelivery of the whole batch: nothing changes.
    assert await projection.apply_batch(a + b) == [Outcome.DUPLICATE] * 6


async def test_a_batch_that_fails_midway_leaves_nothing_applied(projection: PredictionProjection) -> None:
    prediction_id = uuid.uuid4().hex
    created, started, _ = _lifecycle(prediction_id)
    # An event the database refuses (a created_at that is no timestamp) fails the whole batch.
    broken = created.model_copy(update={
        "id": str(uuid.uuid4()), "data": {**created.data, "id": uuid.uuid4().hex, "created_at": "never"}})
    with pytest.raises(psycopg.errors.InvalidDatetimeFormat):
        await projection.apply_batch([created, started, broken])
    assert await projection.get(prediction_id) is None
    async with projection._store.engine.connect() as conn:
        tracked = (await conn.execute(
            text(f"SELECT count(*) FROM {GATEWAY_SCHEMA}.tracking WHERE message_id = ANY(:ids)"),
            {"ids": [created.id, started.id]})).scalar()
    assert tracked == 0
    # Redelivered, the same events apply in full.
    assert await projection.apply_batch([created, started]) == [Outcome.APPLIED, Outcome.APPLIED]


async def test_a_batch_with_an_event_tracked_before_is_rolled_back_whole(projection: PredictionProjection) -> None:
    from services.gateway.projection import CONSUMER, TrackedBefore

    prediction_id = uuid.uuid4().hex
    created, started, _ = _lifecycle(prediction_id)
    # Tracked, but its effect not in the read model (e.g. written by an older gateway that applied it elsewhere).
    async with projection._store.engine.begin() as conn:
        await conn.execute(text(f"INSERT INTO {GATEWAY_SCHEMA}.tracking (consumer, message_id) VALUES (:c, :m)"),
                           {"c": CONSUMER, "m": started.id})
    with pytest.raises(TrackedBefore):
        await projection.apply_batch([created, started])
    # Neither the creation's tracking nor its view was kept.
    assert await projection.get(prediction_id) is None
    assert await projection.apply_batch([created]) == [Outcome.APPLIED]


async def test_an_answer_stored_after_it_was_given_is_seen_by_every_read_of_this_replica(
    projection: PredictionProjection,
) -> None:
    """`record_answer_soon` returns before its statement; a read right after it still shows the answer."""
    ids = [uuid.uuid4().hex for _ in range(3)]
    for prediction_id in ids:
        await projection.apply_batch(_lifecycle(prediction_id)[:1])
    for prediction_id in ids:
        ended = apply_event(await projection.get(prediction_id), _lifecycle(prediction_id)[2])
        projection.record_answer_soon(ended, 1)
    assert (await projection.get(ids[0]))["status"] == "succeeded"
    listed = await projection.list_for_account("alice", before=None, limit=100)
    assert {view["id"]: view["status"] for view in listed if view["id"] in ids} == dict.fromkeys(ids, "succeeded")
    # The scheduler's end, when it comes, still applies over the answer (it was stored at version 1).
    lifecycle = _lifecycle(ids[0])
    assert await projection.apply_batch(lifecycle[1:]) == [Outcome.APPLIED, Outcome.APPLIED]
    assert (await projection.get(ids[0]))["output"] == "hello world"


async def test_a_failed_deferred_answer_leaves_the_read_model_to_the_events(
    projection: PredictionProjection, caplog: pytest.LogCaptureFixture,
) -> None:
    prediction_id = uuid.uuid4().hex
    await projection.apply_batch(_lifecycle(prediction_id)[:1])
    projection.record_answer_soon({"id": prediction_id, "status": "succeeded", "not_json": object()}, 1)
    assert (await projection.get(prediction_id))["status"] == "starting"
    assert "read model not updated" in caplog.text


async def test_a_creation_this_replica_stored_comes_back_without_a_statement(
    projection: PredictionProjection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    prediction_id = uuid.uuid4().hex
    created, started, succeeded = _lifecycle(prediction_id)
    await projection.apply_created(apply_event(None, created))
    statements = projection._store.statements
    reads: list[str] = []
    fetch = statements.fetch

    async def counted(statement: str, params: Any = None) -> list[Any]:
        reads.append(statement)
        return await fetch(statement, params)

    monkeypatch.setattr(statements, "fetch", counted)
    assert await projection.apply_batch([created]) == [Outcome.DUPLICATE]
    assert reads == []
    # A redelivery of the same event reads the row, as any event does.
    assert await projection.apply_batch([created]) == [Outcome.DUPLICATE]
    assert len(reads) == 1
    assert await projection.apply_batch([started, succeeded]) == [Outcome.APPLIED, Outcome.APPLIED]
    assert (await projection.get(prediction_id))["status"] == "succeeded"


async def test_a_creation_whose_event_came_first_is_not_written_again_by_its_request(
    projection: PredictionProjection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    prediction_id = uuid.uuid4().hex
    created, started, _ = _lifecycle(prediction_id)
    assert await projection.apply_batch([created, started]) == [Outcome.APPLIED, Outcome.APPLIED]
    statements = projection._store.statements
    executed: list[str] = []
    execute = statements.execute

    async def counted(statement: str, params: Any = None) -> None:
        executed.append(statement)
        await execute(statement, params)

    monkeypatch.setattr(statements, "execute", counted)
    await projection.apply_created(apply_event(None, created))
    assert executed == []
    assert (await projection.get(prediction_id))["status"] == "processing"
    # Another prediction's request still writes its row.
    other = _lifecycle(uuid.uuid4().hex)[0]
    await projection.apply_created(apply_event(None, other))
    assert len(executed) == 1 and (await projection.get(other.data["id"]))["status"] == "starting"


async def test_creates_and_polls_of_one_turn_share_a_statement_and_each_gets_its_own_row(
    projection: PredictionProjection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    statements = projection._store.statements
    sent: list[str] = []
    execute, fetch = statements.execute, statements.fetch

    async def counted_execute(statement: str, params: Any = None) -> None:
        sent.append(statement)
        await execute(statement, params)

    async def counted_fetch(statement: str, params: Any = None) -> list[Any]:
        sent.append(statement)
        return await fetch(statement, params)

    monkeypatch.setattr(statements, "execute", counted_execute)
    monkeypatch.setattr(statements, "fetch", counted_fetch)
    created = [_lifecycle(uuid.uuid4().hex)[0] for _ in range(3)]
    await asyncio.gather(*(projection.apply_created(apply_event(None, event)) for event in created))
    assert len(sent) == 1
    ids = [event.data["id"] for event in created]
    views = await asyncio.gather(*(projection.get(id_) for id_ in [*ids, "missing"]))
    assert [view["id"] for view in views[:3]] == ids and views[3] is None
    assert all(view["status"] == "starting" for view in views[:3])
    assert len(sent) == 2
    # One bad view fails its own create only.
    broken = {**apply_event(None, _lifecycle(uuid.uuid4().hex)[0]), "created_at": "never"}
    good = apply_event(None, _lifecycle(uuid.uuid4().hex)[0])
    outcomes = await asyncio.gather(projection.apply_created(broken), projection.apply_created(good),
                                    return_exceptions=True)
    assert isinstance(outcomes[0], psycopg.errors.InvalidDatetimeFormat) and outcomes[1] is None
    assert (await projection.get(good["id"]))["status"] == "starting"


def _changed_right_after_the_read(projection: PredictionProjection, monkeypatch: pytest.MonkeyPatch,
                                  change: Any) -> list[int]:
    """Make `change` happen between the batch's unlocked read and its write; returns the locked retries seen."""
    statements = projection._store.statements
    fetch, transaction = statements.fetch, statements.transaction
    locked: list[int] = []

    async def fetch_then_change(statement: str, params: Any = None) -> list[Any]:
        rows = await fetch(statement, params)
        if "xmin" in statement:
            await change()
        return rows

    def counted_transaction() -> Any:
        locked.append(1)
        return transaction()

    monkeypatch.setattr(statements, "fetch", fetch_then_change)
    monkeypatch.setattr(statements, "transaction", counted_transaction)
    return locked


async def test_a_row_changed_after_the_read_is_not_overwritten_the_batch_is_applied_again_under_locks(
    projection: PredictionProjection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An answer stored meanwhile keeps the row's version; the batch folded from the row before it must not undo
    it, so the write finds the row changed, writes nothing, and the locked retry folds onto the answer."""
    prediction_id = uuid.uuid4().hex
    created, started, succeeded = _lifecycle(prediction_id)
    assert await projection.apply_batch([created]) == [Outcome.APPLIED]
    answered = apply_event(await projection.get(prediction_id), succeeded)
    locked = _changed_right_after_the_read(projection, monkeypatch,
                                           lambda: projection.record_answer(answered, 1))
    assert await projection.apply_batch([started]) == [Outcome.APPLIED]
    assert locked == [1]
    view = await projection.get(prediction_id)
    assert view["status"] == "succeeded" and view["output"] == "hello world" and view["stream_version"] == 2


async def test_a_row_created_after_the_read_is_not_overwritten_the_batch_is_applied_again_under_locks(
    projection: PredictionProjection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    prediction_id = uuid.uuid4().hex
    created, started, _ = _lifecycle(prediction_id)
    stored = {**apply_event(None, created), "logs": "stored by the create request"}
    locked = _changed_right_after_the_read(projection, monkeypatch, lambda: projection.apply_created(stored))
    assert await projection.apply_batch([created, started]) == [Outcome.DUPLICATE, Outcome.APPLIED]
    assert locked == [1]
    view = await projection.get(prediction_id)
    assert view["status"] == "processing" and view["logs"] == "stored by the create request"


async def test_a_batch_whose_rows_did_not_change_is_written_without_a_transaction(
    projection: PredictionProjection, monkeypatch: pytest.MonkeyPatch,
) -> None:
    prediction_id = uuid.uuid4().hex
    locked = _changed_right_after_the_read(projection, monkeypatch, lambda: asyncio.sleep(0))
    assert await projection.apply_batch(_lifecycle(prediction_id)) == [Outcome.APPLIED] * 3
    assert await projection.apply_batch(_lifecycle(prediction_id)) == [Outcome.DUPLICATE] * 3
    assert locked == []
    assert (await projection.get(prediction_id))["status"] == "succeeded"


async def test_the_consumer_waits_for_the_creation_this_replica_is_storing_and_repeats_nothing(
    projection: PredictionProjection,
) -> None:
    """The event of a creation whose request is still storing its row waits for that write: then it is known as
    stored here, and is acknowledged without writing the row a second time."""
    prediction_id = uuid.uuid4().hex
    created, started, _ = _lifecycle(prediction_id)
    release = asyncio.Event()
    insert = projection._insert_created

    async def slow_insert(views: list[dict[str, Any]]) -> list[None]:
        await release.wait()
        return await insert(views)

    projection._store_created_rows = Coalesced(slow_insert)
    storing = asyncio.create_task(projection.apply_created(apply_event(None, created)))
    await asyncio.sleep(0.05)
    consuming = asyncio.create_task(projection.apply_batch([created, started]))
    await asyncio.sleep(0.05)
    assert not consuming.done()  # waiting for the row being stored
    release.set()
    await storing
    assert await consuming == [Outcome.DUPLICATE, Outcome.APPLIED]
    assert (await projection.get(prediction_id))["status"] == "processing"
