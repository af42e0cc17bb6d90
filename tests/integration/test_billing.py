"""Billing against real PostgreSQL and NATS JetStream: usage recorded exactly once, whatever the delivery order."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from libs.bus.nats import Bus, connect
from libs.events import Envelope
from services.billing.__main__ import rebuild
from services.billing.bootstrap import Deps, bootstrap
from services.billing.settings import Settings
from services.billing.subscribers import consume_prediction_events


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@pytest.fixture
async def publisher(nats_url: str) -> AsyncIterator[Bus]:
    bus = await connect(nats_url, name="billing-test-publisher")
    await bus.ensure_streams()
    yield bus
    await bus.close()


@pytest.fixture
async def billing(database_url: str, nats_url: str) -> AsyncIterator[Deps]:
    deps = await bootstrap(Settings(database_url=database_url, nats_url=nats_url))
    stop = asyncio.Event()
    # A durable of its own: test sessions sharing one NATS server must not take each other's messages.
    durable = f"billing-usage-{uuid.uuid4().hex[:8]}"
    tasks = [
        asyncio.create_task(consume_prediction_events(deps, stop, durable=durable)),
    ]
    yield deps
    stop.set()
    await asyncio.gather(*tasks)
    await deps.bus.js.delete_consumer("SCHEDULER_EVENTS", durable)
    await deps.close()


def lifecycle(prediction_id: str, *, facts_in_the_end: bool = True) -> tuple[Envelope, Envelope]:
    """`prediction.created` and `prediction.succeeded` as the scheduler records them (ends carry account, model,
    version and hardware; `facts_in_the_end=False` gives an end as recorded before they did)."""
    stream = f"prediction-{prediction_id}"
    created = Envelope(
        type="prediction.created",
        stream_id=stream,
        stream_version=1,
        data={
            "id": prediction_id,
            "model": "alice/hello",
            "version": "a" * 64,
            "input": {"text": "world"},
            "webhook": None,
            "webhook_events_filter": None,
            "account": "alice",
            "source": "api",
            "hardware": "cpu",
            "created_at": "2026-01-01T00:00:00+00:00",
        },
    )
    succeeded = Envelope(
        type="prediction.succeeded",
        stream_id=stream,
        stream_version=3,
        data={
            "id": prediction_id,
            "output": "hello world",
            "logs": "",
            "started_at": "2026-01-01T00:00:01+00:00",
            "completed_at": "2026-01-01T00:00:03+00:00",
            "predict_time": 2.0,
            **({"account": "alice", "model": "alice/hello", "version": "a" * 64, "hardware": "cpu"}
               if facts_in_the_end else {}),
        },
    )
    return created, succeeded


async def publish(bus: Bus, event: Envelope, msg_id: str | None = None) -> None:
    await bus.publish(f"scheduler.events.{event.type}", event.to_json(), msg_id=msg_id or event.id)


async def usage_rows(deps: Deps, prediction_id: str) -> list[Any]:
    async with deps.engine.connect() as conn:
        result = await conn.execute(
            text("SELECT * FROM billing.usage WHERE prediction_id = :id"), {"id": prediction_id}
        )
        return list(result.mappings())


async def usage_events(deps: Deps, prediction_id: str) -> list[Envelope]:
    return await deps.store.read_stream(f"usage-{prediction_id}")


async def test_usage_is_recorded_once_even_when_the_terminal_event_comes_twice(
    billing: Deps, publisher: Bus
) -> None:
    prediction_id = uuid.uuid4().hex
    created, succeeded = lifecycle(prediction_id)
    await publish(publisher, created)
    await publish(publisher, succeeded)
    # A different Nats-Msg-Id defeats JetStream's de-duplication: only tracking protects us now.
    await publish(publisher, succeeded, msg_id=f"{succeeded.id}-again")

    rows = await eventually(lambda: usage_rows(billing, prediction_id))
    await asyncio.sleep(1.0)
    assert len(await usage_rows(billing, prediction_id)) == 1
    assert [dict(row) | {"recorded_at": None} for row in rows] == [
        {"prediction_id": prediction_id, "account": "alice", "hardware": "cpu", "predict_time": 2.0,
         "recorded_at": None}
    ]
    [event] = await usage_events(billing, prediction_id)
    assert event.type == "usage.recorded"
    assert event.data["model"] == "alice/hello" and event.data["completed_at"] == "2026-01-01T00:00:03+00:00"
    # Nothing consumes billing's events: they stay in its log and are not published.
    async with billing.engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM billing.outbox"))).scalar() == 0


async def test_an_end_is_billed_without_its_created_event(billing: Deps, publisher: Bus) -> None:
    prediction_id = uuid.uuid4().hex
    _created, succeeded = lifecycle(prediction_id)
    await publish(publisher, succeeded)
    rows = await eventually(lambda: usage_rows(billing, prediction_id))
    assert [(row["account"], row["hardware"], row["predict_time"]) for row in rows] == [("alice", "cpu", 2.0)]


async def test_an_older_end_is_completed_from_the_created_event_kept_then(billing: Deps, publisher: Bus) -> None:
    """Ends recorded before they carried the facts: billing kept `prediction.created` then, and uses it."""
    from services.billing.handlers import handle_prediction_event

    prediction_id = uuid.uuid4().hex
    created, succeeded = lifecycle(prediction_id, facts_in_the_end=False)
    await publish(publisher, succeeded)
    await asyncio.sleep(0.5)
    assert await usage_rows(billing, prediction_id) == []

    await handle_prediction_event(created, billing.unit_of_work)
    rows = await eventually(lambda: usage_rows(billing, prediction_id))
    assert rows[0]["predict_time"] == 2.0
    assert len(await usage_events(billing, prediction_id)) == 1


async def test_rebuild_projections_restores_usage_from_the_log(
    billing: Deps, publisher: Bus, database_url: str, nats_url: str
) -> None:
    prediction_id = uuid.uuid4().hex
    for event in lifecycle(prediction_id):
        await publish(publisher, event)
    await eventually(lambda: usage_rows(billing, prediction_id))
    async with billing.engine.begin() as conn:
        await conn.execute(text("DELETE FROM billing.usage"))

    await rebuild(Settings(database_url=database_url, nats_url=nats_url))
    rows = await usage_rows(billing, prediction_id)
    assert [(row["account"], row["hardware"], row["predict_time"]) for row in rows] == [("alice", "cpu", 2.0)]


async def test_a_batch_of_ends_is_written_whole_or_not_at_all(billing: Deps) -> None:
    from libs.eventstore import AlreadyTracked
    from services.billing.handlers import record_usage_batch

    first, second, third = uuid.uuid4().hex, uuid.uuid4().hex, uuid.uuid4().hex
    _, first_end = lifecycle(first)
    _, second_end = lifecycle(second)
    _, third_end = lifecycle(third)
    # The same end twice in one batch (a redelivery that overtook an acknowledgement) is recorded once.
    assert await record_usage_batch([first_end, second_end, first_end], billing.unit_of_work) == [None] * 3
    # A batch holding an end recorded before is refused whole (nothing of it is written); the consumer then
    # handles each message alone, and alone, a message recorded before is no error and writes nothing more.
    with pytest.raises(AlreadyTracked):
        await record_usage_batch([third_end, first_end], billing.unit_of_work)
    assert await usage_rows(billing, third) == []
    assert await record_usage_batch([third_end], billing.unit_of_work) == [None]
    assert await record_usage_batch([first_end], billing.unit_of_work) == [None]
    for prediction_id in (first, second, third):
        assert len(await usage_rows(billing, prediction_id)) == 1
        assert len(await usage_events(billing, prediction_id)) == 1
