"""Fair share in the scheduler against a real PostgreSQL: a backed-up queue holds a bursting account's further
jobs in their work rows (nothing in the outbox), lets another account in at once, and the control loop
publishes the held jobs in turn as the queue drains."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text

from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.testing.scheduler import forget_pending_work
from services.scheduler.adapters import work_postgres as work
from services.scheduler.adapters.clock import SystemClock
from services.scheduler.bootstrap import MIGRATIONS, SCHEMA
from services.scheduler.control import HELD_LINE, Controller, ControlSettings
from services.scheduler.domain import placement
from services.scheduler.domain.fair_share import FairSharePolicy, RecentLoads
from services.scheduler.handlers import CreatePrediction, create_prediction
from services.scheduler.ports import VersionInfo

# An account alone may have as many waiting as anyone (solo_backlog = min_backlog): holding shows at once.
POLICY = FairSharePolicy(min_backlog=2, backlog_per_running=1.0, solo_backlog=2)


class FixedRegistry:
    async def get_version(self, version_id: str) -> VersionInfo:
        return VersionInfo(id=version_id, model="cogwheel/shared", hardware="cpu", package_key="k",
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


async def create(store: EventStore, version: str, account: str, recent_loads: RecentLoads | None = None) -> str:
    prediction = await create_prediction(
        CreatePrediction(version_id=version, input={"seconds": 1}, account=account), store=store,
        registry=FixedRegistry(), clock=SystemClock(), fair_share_policy=POLICY, recent_loads=recent_loads)
    return prediction.id


async def published(store: EventStore, ids: list[str]) -> list[str]:
    """The predictions (of ``ids``, in their order) whose job is in the outbox."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT msg_id FROM scheduler.outbox WHERE subject LIKE 'runner.jobs.%'"
                                        " AND msg_id = ANY(:ids)"), {"ids": ids})).all()
    found = {row.msg_id for row in rows}
    return [i for i in ids if i in found]


async def start(store: EventStore, prediction_id: str) -> None:
    async with store.transaction() as tx:
        await tx.also(*work.mark_started(store.schema, prediction_id, started_at=datetime.now(UTC), node="n1",
                                         instance="i-1"))


def controller(store: EventStore) -> Controller:
    none: Any = None
    return Controller(store=store, clock=SystemClock(), nodes=none, commands=none, queues=none, deployments=none,
                      runners=none, catalog=none, settings=ControlSettings(fair_share=POLICY))


async def test_a_burst_is_held_another_account_goes_in_and_held_jobs_are_released_in_turn(store: EventStore) -> None:
    version = uuid.uuid4().hex * 2
    alice = [await create(store, version, "alice") for _ in range(6)]
    # The queue takes two jobs before it is backed up; alice's others wait in the scheduler.
    assert await published(store, alice) == alice[:2]
    held = [item for item in await work.all_work(store) if item.prediction_id in alice and item.held]
    assert [item.prediction_id for item in held] == alice[2:]
    # bob is below his share of the backed-up queue: his job goes straight in.
    bob = await create(store, version, "bob")
    assert await published(store, [bob]) == [bob]

    # Nothing drained yet: nothing is released.
    await controller(store)._release_held({"v-" + version})
    assert await published(store, alice) == alice[:2]
    # Alice's two and bob's one start (three running: room for three waiting): her held jobs go in, in order.
    for prediction_id in (*alice[:2], bob):
        await start(store, prediction_id)
    await controller(store)._release_held({"v-" + version})
    assert await published(store, alice) == alice[:5]
    assert [i.prediction_id for i in await work.all_work(store) if i.prediction_id in alice and i.held] == alice[5:]


async def test_creates_deciding_on_recent_loads_hold_the_same_jobs_and_read_only_when_they_must(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    queue_load = work.queue_load

    async def counted(fetch: Any, schema: str, queue: str) -> Any:
        reads.append(queue)
        return await queue_load(fetch, schema, queue)

    monkeypatch.setattr(work, "queue_load", counted)
    recent = RecentLoads(max_age=60)
    version = uuid.uuid4().hex * 2
    alice = [await create(store, version, "alice", recent) for _ in range(4)]
    assert await published(store, alice) == alice[:2]
    # The first create read the empty queue; the second went in on it; the others had to read (and were held).
    assert len(reads) == 3
    bob = await create(store, version, "bob", recent)
    assert await published(store, [bob]) == [bob]
    assert len(reads) == 3  # below his share of the backed-up queue, as a fresh read would say too


async def test_a_held_prediction_says_why_it_waits(store: EventStore) -> None:
    version = uuid.uuid4().hex * 2
    ids = [await create(store, version, "carol") for _ in range(3)]
    items = [item for item in await work.all_work(store) if item.prediction_id in ids]
    await controller(store)._tell_waiting(items, placement.Plan(), {}, datetime.now(UTC))
    async with store.engine.connect() as conn:
        lines = (await conn.execute(text(
            "SELECT stream_id, data->>'logs' AS logs FROM scheduler.events WHERE type = 'prediction.waiting'"
            " AND stream_id = ANY(:streams)"), {"streams": [f"prediction-{i}" for i in ids]})).all()
    assert [(row.stream_id, row.logs) for row in lines] == [(f"prediction-{ids[2]}", HELD_LINE)]


async def test_a_prediction_the_control_loop_fails_ends_like_any_other(store: EventStore) -> None:
    version = uuid.uuid4().hex * 2
    dave = [await create(store, version, "dave") for _ in range(3)]
    assert await published(store, dave) == dave[:2]

    # E.g. its node was lost: the place it took in the queue comes free for the held job at once.
    await controller(store).fail_prediction(dave[0], "The node running this prediction was lost", datetime.now(UTC))
    assert await published(store, dave) == dave
    async with store.engine.connect() as conn:
        def ids_in(table: str) -> Any:
            return text(f"SELECT prediction_id FROM scheduler.{table} WHERE prediction_id = ANY(:ids)")

        work_rows = (await conn.execute(ids_in("work"), {"ids": dave})).scalars().all()
        due = (await conn.execute(ids_in("data_removals"), {"ids": dave})).scalars().all()
    assert sorted(work_rows) == sorted(dave[1:])
    # Its input and output are removed at the end of the retention period, like those of any API prediction.
    assert due == [dave[0]]
