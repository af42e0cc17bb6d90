"""Billing's unit of work over its PostgreSQL schema and event log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import text

from libs.bus.subjects import BILLING_USAGE_DURABLE
from libs.events import new_event
from libs.eventstore import AlreadyTracked, ConcurrencyError, EventStore, OneStatement
from services.billing.domain.usage import USAGE_RECORDED, BilledPrediction, usage_stream
from services.billing.projections import PROJECTIONS, SCHEMA

CONSUMER = BILLING_USAGE_DURABLE


class PostgresBillingUnitOfWork:
    """Billing's writes as one statement (`EventStore.one_statement`): a batch of ends costs one round trip.

    A message processed before is found when the statement is written (`AlreadyTracked`), as is a usage
    recorded before (`ConcurrencyError` on its stream): a unit of one message then writes nothing and ends
    quietly, a unit of several fails, and the batch consumer handles its messages one by one."""

    def __init__(self, unit: OneStatement, store: EventStore, consumer: str = CONSUMER) -> None:
        self._unit = unit
        self._store = store
        self._consumer = consumer
        self.tracked = 0

    async def track(self, message_id: str) -> bool:
        await self._unit.track(self._consumer, message_id)
        self.tracked += 1
        return True

    async def remember_prediction(self, prediction: BilledPrediction) -> None:
        await self._unit.also(
            f"INSERT INTO {SCHEMA}.predictions (prediction_id, account, model, version, hardware)"
            " VALUES (:prediction_id, :account, :model, :version, :hardware)"
            " ON CONFLICT (prediction_id) DO NOTHING",
            prediction.model_dump(),
        )

    async def billed_prediction(self, prediction_id: str) -> BilledPrediction | None:
        async with self._store.autocommit.connect() as conn:
            row = (
                await conn.execute(
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
        for recorded in await self._unit.append(event.stream_id, [event], expected_version=0):
            for projection in PROJECTIONS:
                await projection.apply(self._unit, recorded)
        return True


def unit_of_work_factory(
    store: EventStore,
) -> Callable[[], AbstractAsyncContextManager[PostgresBillingUnitOfWork]]:
    @asynccontextmanager
    async def unit_of_work() -> AsyncIterator[PostgresBillingUnitOfWork]:
        uow: PostgresBillingUnitOfWork | None = None
        try:
            async with store.one_statement() as unit:
                uow = PostgresBillingUnitOfWork(unit, store)
                yield uow
        except (AlreadyTracked, ConcurrencyError):
            if uow is None or uow.tracked != 1:
                raise
            # Its one message was recorded before (a redelivery): there is nothing left to write.

    return unit_of_work
