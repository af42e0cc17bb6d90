"""Billing's unit of work over its PostgreSQL schema and event log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import text

from libs.bus.subjects import BILLING_USAGE_DURABLE
from libs.events import new_event
from libs.eventstore import ConcurrencyError, EventStore, Transaction
from services.billing.domain.usage import USAGE_RECORDED, BilledPrediction, usage_stream
from services.billing.projections import PROJECTIONS, SCHEMA

CONSUMER = BILLING_USAGE_DURABLE


class PostgresBillingUnitOfWork:
    def __init__(self, tx: Transaction, consumer: str = CONSUMER) -> None:
        self._tx = tx
        self._consumer = consumer

    async def track(self, message_id: str) -> bool:
        return await self._tx.track(self._consumer, message_id)

    async def remember_prediction(self, prediction: BilledPrediction) -> None:
        await self._tx.conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.predictions (prediction_id, account, model, version, hardware)"
                " VALUES (:prediction_id, :account, :model, :version, :hardware)"
                " ON CONFLICT (prediction_id) DO NOTHING"
            ),
            prediction.model_dump(),
        )

    async def billed_prediction(self, prediction_id: str) -> BilledPrediction | None:
        row = (
            await self._tx.conn.execute(
                text(
                    f"SELECT prediction_id, account, model, version, hardware FROM {SCHEMA}.predictions"
                    " WHERE prediction_id = :id"
                ),
                {"id": prediction_id},
            )
        ).mappings().first()
        return BilledPrediction(**row) if row else None

    async def record_usage(self, usage: dict[str, Any]) -> bool:
        event = new_event(USAGE_RECORDED, usage_stream(usage["prediction_id"]), usage)
        try:
            stored = await self._tx.append(event.stream_id, [event], expected_version=0)
        except ConcurrencyError:
            return False
        for recorded in stored:
            for projection in PROJECTIONS:
                await projection.apply(self._tx, recorded)
        return True


def unit_of_work_factory(
    store: EventStore,
) -> Callable[[], AbstractAsyncContextManager[PostgresBillingUnitOfWork]]:
    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[PostgresBillingUnitOfWork]:
        async with store.transaction() as tx:
            yield PostgresBillingUnitOfWork(tx)

    return unit_of_work
