"""Idempotent prediction creation in the scheduler against a real PostgreSQL: one prediction per key, even when
requests with the key race, and the key is stored if and only if the prediction is."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.testing.scheduler import forget_pending_work
from services.scheduler.adapters.clock import SystemClock
from services.scheduler.bootstrap import MIGRATIONS, SCHEMA
from services.scheduler.domain.errors import InvalidIdempotencyKeyReuse, QueueUnavailable
from services.scheduler.handlers import CreatePrediction, create_prediction_once
from services.scheduler.ports import VersionInfo


class FixedRegistry:
    async def get_version(self, version_id: str) -> VersionInfo:
        return VersionInfo(id=version_id, model="cogwheel/hello-world", hardware="cpu", package_key="k",
                           predictor_ref="predict.py:Predictor")


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    await migrate(database_url, SCHEMA, MIGRATIONS)
    engine = create_engine(database_url)
    store = EventStore(engine, SCHEMA)
    yield store
    await store.close()
    await forget_pending_work(engine)
    await engine.dispose()


def command(key: str | None, text_input: str = "world", fingerprint: str = "f1") -> CreatePrediction:
    return CreatePrediction(version_id="v" * 64, input={"text": text_input}, account="alice",
                            idempotency_key=key, request_fingerprint=fingerprint)


async def create(store: EventStore, cmd: CreatePrediction, queue_open: bool = True):  # type: ignore[no-untyped-def]
    return await create_prediction_once(cmd, store=store, registry=FixedRegistry(), clock=SystemClock(),
                                        queue_open=lambda: queue_open)


async def created_events(store: EventStore, marker: str) -> int:
    async with store.engine.connect() as conn:
        return (await conn.execute(
            text("SELECT count(*) FROM scheduler.events WHERE type = 'prediction.created'"
                 " AND data->'input'->>'text' = :marker"), {"marker": marker})).scalar_one()


async def test_the_same_key_and_request_returns_the_first_prediction(store: EventStore) -> None:
    key, marker = uuid.uuid4().hex, uuid.uuid4().hex
    first, replayed = await create(store, command(key, marker))
    assert not replayed
    again, replayed = await create(store, command(key, marker))
    assert replayed and again.id == first.id
    with pytest.raises(InvalidIdempotencyKeyReuse):
        await create(store, command(key, marker, fingerprint="another request"))
    # Without a key every request is a new prediction.
    one, _ = await create(store, command(None, marker))
    two, _ = await create(store, command(None, marker))
    assert len({first.id, one.id, two.id}) == 3
    assert await created_events(store, marker) == 3


async def test_racing_requests_with_one_key_make_one_prediction(store: EventStore) -> None:
    key, marker = uuid.uuid4().hex, uuid.uuid4().hex
    results = await asyncio.gather(*(create(store, command(key, marker)) for _ in range(8)))
    assert len({prediction.id for prediction, _ in results}) == 1
    assert sum(1 for _, replayed in results if not replayed) == 1
    assert await created_events(store, marker) == 1


async def test_a_refused_create_stores_no_key_and_a_retry_creates_it(store: EventStore) -> None:
    key, marker = uuid.uuid4().hex, uuid.uuid4().hex
    with pytest.raises(QueueUnavailable):
        await create(store, command(key, marker), queue_open=False)
    assert await created_events(store, marker) == 0
    prediction, replayed = await create(store, command(key, marker))
    assert not replayed and prediction.status == "starting"
    assert await created_events(store, marker) == 1


async def test_a_key_older_than_a_day_is_taken_over(store: EventStore) -> None:
    key, marker = uuid.uuid4().hex, uuid.uuid4().hex
    first, _ = await create(store, command(key, marker))
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE scheduler.idempotency_keys SET created_at = now() - interval '25 hours'"
                                " WHERE key = :key"), {"key": key})
    second, replayed = await create(store, command(key, marker, fingerprint="a new request"))
    assert not replayed and second.id != first.id
