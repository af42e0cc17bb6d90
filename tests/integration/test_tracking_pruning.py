"""Tracking rows older than the retention are forgotten; younger ones, which still stop redeliveries, stay."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.eventstore.tracking import forget_old_tracking, keep_tracking_pruned

HOUR = 3600.0


@pytest.fixture
async def schema(database_url: str) -> str:
    name = f"t_{uuid.uuid4().hex[:10]}"
    await migrate(database_url, name)
    return name


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url, pool_size=2)
    yield engine
    await engine.dispose()


async def add_tracking(engine: AsyncEngine, schema: str, consumer: str, ids: list[str], age_hours: float) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(f"INSERT INTO {schema}.tracking (consumer, message_id, processed_at)"
                 f" SELECT :consumer, id, now() - make_interval(secs => :age) FROM unnest(CAST(:ids AS text[])) AS id"),
            {"consumer": consumer, "ids": ids, "age": age_hours * HOUR},
        )


async def tracked(engine: AsyncEngine, schema: str) -> set[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(f"SELECT consumer, message_id FROM {schema}.tracking"))
        return {(row.consumer, row.message_id) for row in rows}


async def test_rows_past_the_retention_go_in_batches_and_younger_ones_stay(engine: AsyncEngine, schema: str) -> None:
    old = [f"old-{i}" for i in range(7)]
    await add_tracking(engine, schema, "billing-predictions", old[:4], age_hours=30)
    await add_tracking(engine, schema, "gateway-predictions", old[4:], age_hours=25)
    await add_tracking(engine, schema, "billing-predictions", ["young-1", "young-2"], age_hours=23)

    assert await forget_old_tracking(engine, schema, retention_seconds=24 * HOUR, batch=3) == 7
    assert await tracked(engine, schema) == {("billing-predictions", "young-1"), ("billing-predictions", "young-2")}
    assert await forget_old_tracking(engine, schema, retention_seconds=24 * HOUR, batch=3) == 0


async def test_a_redelivery_of_a_message_still_remembered_is_refused(engine: AsyncEngine, schema: str) -> None:
    """What pruning keeps goes on doing its job: the store still recognises a young message as applied."""
    await add_tracking(engine, schema, "c", ["ancient"], age_hours=200)
    store = EventStore(engine, schema)
    try:
        async with store.transaction() as uow:
            assert await uow.track("c", "recent") is True
        await forget_old_tracking(engine, schema, retention_seconds=HOUR)
        async with store.transaction() as uow:
            assert await uow.track("c", "recent") is False
            assert await uow.track("c", "ancient") is True
    finally:
        await store.close()


async def test_the_age_lookup_has_its_index(engine: AsyncEngine, schema: str) -> None:
    async with engine.connect() as conn:
        definition = (await conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE schemaname = :schema AND indexname = 'tracking_processed_at'"),
            {"schema": schema},
        )).scalar_one()
    assert "brin (processed_at)" in definition.lower()


async def test_the_pruning_loop_prunes_at_once_and_stops_when_told(engine: AsyncEngine, schema: str) -> None:
    await add_tracking(engine, schema, "c", ["stale"], age_hours=2)
    stop = asyncio.Event()
    loop = asyncio.create_task(keep_tracking_pruned(engine, schema, HOUR, stop, interval=60))
    for _ in range(100):
        if not await tracked(engine, schema):
            break
        await asyncio.sleep(0.05)
    assert await tracked(engine, schema) == set()
    stop.set()
    await asyncio.wait_for(loop, timeout=5)
