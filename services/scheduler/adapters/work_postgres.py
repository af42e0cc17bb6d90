"""The `work` table (predictions not yet ended, by queue) and the instance streams of the event log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from libs.events import Envelope
from libs.eventstore import EventStore
from libs.eventstore.store import _row_to_envelope


@dataclass(frozen=True)
class WorkItem:
    prediction_id: str
    queue: str
    label: str
    model_version: str
    deployment: str | None
    account: str
    created_at: datetime
    started_at: datetime | None
    node: str | None
    instance: str | None
    told: str


async def add(conn: Any, schema: str, *, prediction_id: str, queue: str, label: str, model_version: str,
              deployment: str | None, account: str, created_at: datetime) -> None:
    await conn.execute(
        text(f"INSERT INTO {schema}.work (prediction_id, queue, label, model_version, deployment, account,"
             " created_at) VALUES (:id, :queue, :label, :version, :deployment, :account, :created_at)"
             " ON CONFLICT (prediction_id) DO NOTHING"),
        {"id": prediction_id, "queue": queue, "label": label, "version": model_version, "deployment": deployment,
         "account": account, "created_at": created_at},
    )


async def mark_started(conn: Any, schema: str, prediction_id: str, *, started_at: datetime, node: str,
                       instance: str | None) -> None:
    await conn.execute(
        text(f"UPDATE {schema}.work SET started_at = :at, node = :node, instance = :instance"
             " WHERE prediction_id = :id"),
        {"id": prediction_id, "at": started_at, "node": node, "instance": instance},
    )


async def remove(conn: Any, schema: str, prediction_id: str) -> None:
    await conn.execute(text(f"DELETE FROM {schema}.work WHERE prediction_id = :id"), {"id": prediction_id})


async def set_told(conn: Any, schema: str, prediction_id: str, told: str) -> None:
    await conn.execute(text(f"UPDATE {schema}.work SET told = :told WHERE prediction_id = :id"),
                       {"id": prediction_id, "told": told})


async def all_work(store: EventStore) -> list[WorkItem]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(text(
            f"SELECT * FROM {store.schema}.work ORDER BY created_at, prediction_id"))).all()
    return [WorkItem(row.prediction_id, row.queue, row.label, row.model_version, row.deployment, row.account,
                     row.created_at, row.started_at, row.node, row.instance, row.told) for row in rows]


async def instance_events(store: EventStore, after: int) -> list[Envelope]:
    async with store.engine.connect() as conn:
        rows = (await conn.execute(
            text(f"SELECT * FROM {store.schema}.events WHERE (stream_id LIKE 'instance-%' OR stream_id LIKE 'node-%')"
                 " AND position > :after"
                 " ORDER BY position LIMIT 5000"),
            {"after": after},
        )).all()
    return [_row_to_envelope(row) for row in rows]
