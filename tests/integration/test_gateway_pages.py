"""Sharing and data removal of prediction pages: events in the gateway's log, folded and rebuilt, on PostgreSQL."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from libs.db import create_engine
from libs.db.migrations import migrate
from libs.eventstore import EventStore
from libs.eventstore.projections import rebuild_from_log
from libs.predictions import render_prediction
from services.gateway.bootstrap import MIGRATIONS
from services.gateway.projection import SCHEMA, PredictionProjection
from services.gateway.sharing import (
    DATA_REMOVED,
    SHARED,
    UNSHARED,
    PagesProjection,
    PredictionPages,
    blank_removed_views,
    stream_id,
)


@pytest.fixture
async def store(database_url: str):
    await migrate(database_url, SCHEMA, MIGRATIONS)
    engine = create_engine(database_url, pool_size=2)
    store = EventStore(engine, SCHEMA)
    yield store
    await store.close()
    await engine.dispose()


def _view(prediction_id: str) -> dict[str, Any]:
    return {
        "id": prediction_id, "model": "acme/painter", "version": "v" * 64, "input": {"prompt": "a cat"},
        "output": "cogwheel-output:" + prediction_id + "/1-cat.png", "logs": "drawing", "error": None,
        "status": "succeeded", "created_at": "2026-01-01T00:00:00+00:00", "started_at": None,
        "completed_at": None, "predict_time": 1.0, "source": "web", "account": "acme",
    }


async def test_sharing_and_data_removal_are_events_that_survive_a_rebuild(store: EventStore) -> None:
    prediction_id = uuid.uuid4().hex
    projection, pages = PredictionProjection(store), PredictionPages(store)
    await projection.apply_created(_view(prediction_id))
    assert (await pages.state(prediction_id)).shared is False

    await pages.record(prediction_id, SHARED, "acme")
    assert (await pages.state(prediction_id)).shared is True
    await pages.record(prediction_id, UNSHARED, "acme")
    await pages.record(prediction_id, SHARED, "acme")
    await pages.record(prediction_id, DATA_REMOVED, "acme")

    state = await pages.state(prediction_id)
    assert state.shared is True and state.data_removed_at is not None
    removed = await projection.get(prediction_id)
    assert (removed["input"], removed["output"], removed["logs"]) == ({}, None, "")
    body = render_prediction(removed, "http://example.test")
    assert body["data_removed"] is True and body["status"] == "succeeded"

    events = await store.read_stream(stream_id(prediction_id))
    assert [e.type for e in events] == [SHARED, UNSHARED, SHARED, DATA_REMOVED]
    assert all(e.metadata.actor == "acme" for e in events)

    # Rebuilding folds the same state from the log, and blanks a re-folded prediction view again.
    async with store.engine.begin() as conn:
        await conn.execute(text(f"DELETE FROM {SCHEMA}.prediction_pages WHERE id = :id"), {"id": prediction_id})
        await conn.execute(text(f"DELETE FROM {SCHEMA}.predictions WHERE id = :id"), {"id": prediction_id})
    await projection.apply_created(_view(prediction_id))
    await rebuild_from_log(store, [PagesProjection()])
    async with store.engine.begin() as conn:
        await blank_removed_views(conn)
    assert await pages.state(prediction_id) == state
    assert (await projection.get(prediction_id))["output"] is None


async def test_a_prediction_nobody_decided_about_is_private(store: EventStore) -> None:
    state = await PredictionPages(store).state("never-" + uuid.uuid4().hex)
    assert state.shared is False and state.data_removed_at is None
