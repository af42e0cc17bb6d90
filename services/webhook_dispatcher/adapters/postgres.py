"""The dispatcher's units of work over its PostgreSQL schema and event log."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import text

from libs.events import new_event
from libs.eventstore import EventStore, Transaction
from services.webhook_dispatcher.ports import AttemptResult, PendingDelivery, StoredView

SCHEMA = "webhook_dispatcher"
CONSUMER = "webhook_dispatcher-deliveries"
DELIVERY_ATTEMPTED = "webhook.delivery_attempted"


def attempt_stream(prediction_id: str) -> str:
    return f"webhook-{prediction_id}"


class PostgresPredictionUnitOfWork:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def track(self, message_id: str) -> bool:
        return await self._tx.track(CONSUMER, message_id)

    async def load_view(self, prediction_id: str) -> StoredView | None:
        row = (
            await self._tx.conn.execute(
                text(
                    f"SELECT stream_version, view FROM {SCHEMA}.predictions"
                    " WHERE prediction_id = :id FOR UPDATE"
                ),
                {"id": prediction_id},
            )
        ).first()
        return StoredView(stream_version=row.stream_version, view=row.view) if row else None

    async def save_view(self, prediction_id: str, stream_version: int, view: dict[str, Any]) -> None:
        await self._tx.conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.predictions (prediction_id, stream_version, view)"
                " VALUES (:id, :version, CAST(:view AS jsonb))"
                " ON CONFLICT (prediction_id) DO UPDATE SET stream_version = EXCLUDED.stream_version,"
                " view = EXCLUDED.view, updated_at = now()"
            ),
            {"id": prediction_id, "version": stream_version, "view": json.dumps(view, default=str)},
        )

    async def add_delivery(
        self, prediction_id: str, webhook_event: str, url: str, body: dict[str, Any]
    ) -> None:
        await self._tx.conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.deliveries (id, prediction_id, webhook_event, url, body)"
                " VALUES (:id, :prediction_id, :webhook_event, :url, CAST(:body AS jsonb))"
            ),
            {
                "id": str(uuid.uuid4()),
                "prediction_id": prediction_id,
                "webhook_event": webhook_event,
                "url": url,
                "body": json.dumps(body),
            },
        )


_CLAIM = f"""
SELECT id, prediction_id, webhook_event, url, body, attempts FROM {SCHEMA}.deliveries d
WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()
  AND NOT EXISTS (
    SELECT 1 FROM {SCHEMA}.deliveries earlier
    WHERE earlier.prediction_id = d.prediction_id AND earlier.status = 'pending' AND earlier.seq < d.seq)
ORDER BY next_attempt_at, seq
LIMIT 1
FOR UPDATE SKIP LOCKED
"""


class PostgresDeliveryUnitOfWork:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def claim_next(self) -> PendingDelivery | None:
        row = (await self._tx.conn.execute(text(_CLAIM))).mappings().first()
        return PendingDelivery(**{**row, "id": str(row["id"])}) if row else None

    async def record_attempt(
        self,
        delivery: PendingDelivery,
        attempt: int,
        result: AttemptResult,
        status: str,
        retry_in: float | None,
    ) -> None:
        data = {
            "prediction_id": delivery.prediction_id,
            "delivery_id": delivery.id,
            "webhook_event": delivery.webhook_event,
            "url": delivery.url,
            "status_code": result.status_code,
            "latency_ms": result.latency_ms,
            "error": result.error,
            "attempt": attempt,
        }
        stream = attempt_stream(delivery.prediction_id)
        await self._tx.append(stream, [new_event(DELIVERY_ATTEMPTED, stream, data)], expected_version=None)
        await self._tx.conn.execute(
            text(
                f"UPDATE {SCHEMA}.deliveries SET status = :status, attempts = :attempt,"
                " last_status_code = :code, last_error = :error, updated_at = now(),"
                " next_attempt_at = clock_timestamp() + make_interval(secs => :retry_in)"
                " WHERE id = :id"
            ),
            {
                "status": status,
                "attempt": attempt,
                "code": result.status_code,
                "error": result.error,
                "retry_in": retry_in or 0.0,
                "id": delivery.id,
            },
        )


def prediction_unit_of_work_factory(
    store: EventStore,
) -> Callable[[], AbstractAsyncContextManager[PostgresPredictionUnitOfWork]]:
    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[PostgresPredictionUnitOfWork]:
        async with store.transaction() as tx:
            yield PostgresPredictionUnitOfWork(tx)

    return unit_of_work


def delivery_unit_of_work_factory(
    store: EventStore,
) -> Callable[[], AbstractAsyncContextManager[PostgresDeliveryUnitOfWork]]:
    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[PostgresDeliveryUnitOfWork]:
        async with store.transaction() as tx:
            yield PostgresDeliveryUnitOfWork(tx)

    return unit_of_work
