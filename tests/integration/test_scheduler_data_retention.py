"""The data-retention sweep against a real PostgreSQL: what is due survives a restart (and a sweep that died
half-way), and scheduler instances sweeping at once remove each prediction's data exactly once."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.testing.scheduler import forget_pending_work
from services.scheduler.adapters.clock import SystemClock
from services.scheduler.bootstrap import MIGRATIONS, SCHEMA
from services.scheduler.domain import prediction as model
from services.scheduler.handlers import CreatePrediction, cancel_prediction, create_prediction_once, remove_due_data
from services.scheduler.ports import VersionInfo


class FixedRegistry:
    async def get_version(self, version_id: str) -> VersionInfo:
        return VersionInfo(id=version_id, model="cogwheel/hello-world", hardware="cpu", package_key="k",
                           predictor_ref="predict.py:Predictor")


class NoRunners:
    async def request_cancel(self, prediction_id: str) -> None:
        pass


class RecordingData:
    """Deletes nothing; counts the removals asked for. It dies after counting one of `fail_for` (a crash
    mid-sweep)."""

    def __init__(self, calls: Counter[str], *, fail_for: frozenset[str] = frozenset(), delay: float = 0.0) -> None:
        self.calls, self.fail_for, self.delay = calls, fail_for, delay

    async def remove(self, prediction_id: str, *, input: dict[str, Any], output: Any, account: str,
                     spilled: list[str]) -> None:
        self.calls[prediction_id] += 1
        await asyncio.sleep(self.delay)
        if prediction_id in self.fail_for:
            raise ConnectionError("object store went away")


async def _store(database_url: str) -> EventStore:
    """A scheduler process's own connection pool and store."""
    return EventStore(create_engine(database_url), SCHEMA)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    await migrate(database_url, SCHEMA, MIGRATIONS)
    store = await _store(database_url)
    yield store
    await forget_pending_work(store.engine)
    await store.close()
    await store.engine.dispose()


async def _ended_api_prediction(store: EventStore, source: str = "api") -> str:
    """A prediction that ended (canceled) with its data due for removal at once."""
    created, _ = await create_prediction_once(
        CreatePrediction(version_id="v" * 64, input={"text": f"private {uuid.uuid4().hex}"}, account="alice",
                         source=source),
        store=store, registry=FixedRegistry(), clock=SystemClock(),
    )
    await cancel_prediction(created.id, store=store, clock=SystemClock(), runners=NoRunners(), retention_seconds=0)
    return created.id


async def _state(store: EventStore, prediction_id: str) -> model.Prediction:
    async with store.transaction() as tx:
        return model.load(prediction_id, await tx.read_stream(model.stream_id(prediction_id)))


async def _due(store: EventStore, prediction_id: str) -> bool:
    async with store.engine.connect() as conn:
        row = (await conn.execute(text(f"SELECT 1 FROM {SCHEMA}.data_removals WHERE prediction_id = :id"),
                                  {"id": prediction_id})).first()
    return row is not None


async def _removal_events(store: EventStore, prediction_id: str) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(
            text(f"SELECT count(*) FROM {SCHEMA}.events WHERE stream_id = :stream"
                 " AND type = 'prediction.data_removed'"),
            {"stream": model.stream_id(prediction_id)})).scalar_one())


async def test_a_due_removal_survives_a_crashed_sweep_and_a_restart(store: EventStore, database_url: str) -> None:
    prediction_id = await _ended_api_prediction(store)
    assert await _due(store, prediction_id)

    # The first scheduler dies while deleting the bytes: nothing is recorded, the removal stays due.
    calls: Counter[str] = Counter()
    with pytest.raises(ConnectionError):
        await remove_due_data(store=store, clock=SystemClock(),
                              data=RecordingData(calls, fail_for=frozenset({prediction_id})))
    assert calls[prediction_id] == 1
    assert await _due(store, prediction_id)
    assert not (await _state(store, prediction_id)).data_removed
    await store.close()
    await store.engine.dispose()

    # A scheduler started afterwards (its own pool, nothing in memory) finds it in the database and removes it.
    restarted = await _store(database_url)
    try:
        removed = await remove_due_data(store=restarted, clock=SystemClock(), data=RecordingData(calls))
        assert prediction_id in removed
        assert calls[prediction_id] == 2  # deleting the bytes again is harmless: what is gone is skipped
        state = await _state(restarted, prediction_id)
        assert (state.data_removed, state.input, state.output, state.logs) == (True, {}, None, "")
        assert not await _due(restarted, prediction_id)
        assert prediction_id not in await remove_due_data(store=restarted, clock=SystemClock(),
                                                          data=RecordingData(calls))
        assert await _removal_events(restarted, prediction_id) == 1
    finally:
        await restarted.close()
        await restarted.engine.dispose()


async def test_schedulers_sweeping_at_once_remove_each_prediction_once(store: EventStore, database_url: str) -> None:
    ids = [await _ended_api_prediction(store) for _ in range(12)]
    web = await _ended_api_prediction(store, source="web")
    assert not await _due(store, web)  # web predictions keep their data: nothing is scheduled

    calls: Counter[str] = Counter()
    schedulers = [await _store(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(
            remove_due_data(store=s, clock=SystemClock(), data=RecordingData(calls, delay=0.05)) for s in schedulers
        ))
    finally:
        for s in schedulers:
            await s.close()
            await s.engine.dispose()

    removed = [prediction_id for result in results for prediction_id in result if prediction_id in ids]
    assert sorted(removed) == sorted(ids)  # each by exactly one scheduler
    assert sum(1 for result in results if set(result) & set(ids)) > 1  # the work was shared, not serialised
    assert {prediction_id: calls[prediction_id] for prediction_id in ids} == dict.fromkeys(ids, 1)
    for prediction_id in ids:
        assert await _removal_events(store, prediction_id) == 1
        assert (await _state(store, prediction_id)).data_removed
    assert not (await _state(store, web)).data_removed
    assert calls[web] == 0
