"""The scheduler seals secret input values before anything is stored, and refuses them without a key."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.sealing import SEALED_INPUT, generate_key_pair, open_sealed_json
from services.scheduler import handlers
from services.scheduler.adapters.clock import SystemClock
from services.scheduler.bootstrap import MIGRATIONS
from services.scheduler.domain.errors import InvalidPredictionRequest
from services.scheduler.ports import VersionInfo

VERSION = VersionInfo(id="v1", model="acme/secretive", hardware="cpu", package_key="pkg", predictor_ref="predict.py:P",
                      secret_inputs=frozenset({"api_key", "keys"}))


class Registry:
    async def get_version(self, version_id: str) -> VersionInfo:
        return VERSION


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[EventStore]:
    schema = f"sched_{uuid.uuid4().hex[:8]}"
    await migrate(database_url, schema, MIGRATIONS)
    engine = create_engine(database_url, pool_size=2)
    store = EventStore(engine, schema)
    yield store
    await store.close()
    await engine.dispose()


async def _outbox_jobs(store: EventStore) -> list[dict]:
    async with store.engine.connect() as conn:
        result = await conn.execute(text(f"SELECT subject, payload FROM {store.schema}.outbox"))
        return [json.loads(bytes(payload)) for subject, payload in result if subject.startswith("runner.jobs.")]


async def test_secret_values_reach_the_outbox_only_sealed(store: EventStore) -> None:
    private, public = generate_key_pair()
    planted = f"sk-{uuid.uuid4().hex}"
    command = handlers.CreatePrediction(version_id="v1", account="alice",
                                        input={"prompt": "hi", "api_key": planted, "keys": ["k1", planted]})
    prediction = await handlers.create_prediction(command, store=store, registry=Registry(), clock=SystemClock(),
                                                  secrets_key=public)
    [job] = await _outbox_jobs(store)
    assert job["prediction_id"] == prediction.id
    assert job["input"] == {"prompt": "hi", "api_key": "**********", "keys": ["**********", "**********"]}
    assert open_sealed_json(job[SEALED_INPUT], private) == {"api_key": planted, "keys": ["k1", planted]}
    async with store.engine.connect() as conn:
        dumped = [str(row) for row in await conn.execute(text(f"SELECT * FROM {store.schema}.outbox"))]
        dumped += [str(row) for row in await conn.execute(text(f"SELECT * FROM {store.schema}.events"))]
    assert dumped and not any(planted in row for row in dumped)


async def test_without_a_key_secret_values_are_refused_and_nothing_is_stored(store: EventStore) -> None:
    command = handlers.CreatePrediction(version_id="v1", account="alice", input={"prompt": "hi", "api_key": "sk-1"})
    with pytest.raises(InvalidPredictionRequest, match="secret inputs"):
        await handlers.create_prediction(command, store=store, registry=Registry(), clock=SystemClock())
    assert await _outbox_jobs(store) == []
    # A prediction that leaves its secret inputs out needs no key.
    plain = handlers.CreatePrediction(version_id="v1", account="alice", input={"prompt": "hi", "api_key": None})
    await handlers.create_prediction(plain, store=store, registry=Registry(), clock=SystemClock())
    [job] = await _outbox_jobs(store)
    assert SEALED_INPUT not in job and job["input"] == {"prompt": "hi", "api_key": None}
