"""The dispatcher's units of work over its PostgreSQL schema and event log."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy import text

from libs.bus.subjects import WEBHOOK_DELIVERIES_DURABLE
from libs.events import new_event
from libs.eventstore import ConcurrencyError, EventStore, Transaction
from services.webhook_dispatcher.domain.signing import new_secret, webhook_id
from services.webhook_dispatcher.ports import AttemptRecord, ClaimedDelivery, StoredView
from services.webhook_dispatcher.projections import (
    ATTEMPTS,
    DELIVERY_ATTEMPTED,
    SCHEMA,
    SECRET_CREATED,
    SECRETS,
)

__all__ = ["CONSUMER", "DELIVERY_ATTEMPTED", "SCHEMA", "SECRET_CREATED"]

CONSUMER = WEBHOOK_DELIVERIES_DURABLE
# Tracking keys of recorded attempts (delivery, lease, attempt number).
ATTEMPT_KEYS = "webhook_dispatcher-attempts"
_THROTTLED = "('output', 'logs')"


def attempt_stream(prediction_id: str) -> str:
    return f"webhook-{prediction_id}"


def secret_stream(account: str) -> str:
    return f"webhook-secret-{account}"


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
        self, prediction_id: str, account: str, webhook_event: str, url: str, body: str, lease_seconds: float = 0.0
    ) -> ClaimedDelivery | None:
        return await self._insert(prediction_id, account, webhook_event, url, body, "clock_timestamp()", lease_seconds)

    async def coalesce_progress(
        self,
        prediction_id: str,
        account: str,
        webhook_event: str,
        url: str,
        body: str,
        throttle_seconds: float,
        lease_seconds: float = 0.0,
    ) -> ClaimedDelivery | None:
        # An unsent progress delivery takes the newer state; `output` stays `output` once output was in it.
        # A leased one is in flight (or its sender died mid-send) and is left alone.
        updated = await self._tx.conn.execute(
            text(
                f"UPDATE {SCHEMA}.deliveries SET body = :body, updated_at = now(),"
                " webhook_event = CASE WHEN webhook_event = 'output' THEN 'output' ELSE :event END"
                f" WHERE prediction_id = :id AND status = 'pending' AND webhook_event IN {_THROTTLED}"
                " AND lease_until IS NULL"
            ),
            {"id": prediction_id, "body": body, "event": webhook_event},
        )
        if updated.rowcount:
            return None
        # Due 500 ms after the previous non-final delivery went out (or was queued, when it has not yet).
        due = (
            "GREATEST(clock_timestamp(), (SELECT max(COALESCE(first_attempt_at, created_at))"
            f" + make_interval(secs => :throttle) FROM {SCHEMA}.deliveries"
            " WHERE prediction_id = :prediction_id AND webhook_event <> 'completed'))"
        )
        return await self._insert(
            prediction_id, account, webhook_event, url, body, due, lease_seconds, throttle=throttle_seconds
        )

    async def add_final_delivery(
        self, prediction_id: str, account: str, url: str, body: str, lease_seconds: float = 0.0
    ) -> ClaimedDelivery | None:
        await self._tx.conn.execute(
            text(
                f"UPDATE {SCHEMA}.deliveries SET status = 'superseded', updated_at = now()"
                f" WHERE prediction_id = :id AND status = 'pending' AND webhook_event IN {_THROTTLED}"
                " AND lease_until IS NULL"
            ),
            {"id": prediction_id},
        )
        return await self._insert(prediction_id, account, "completed", url, body, "clock_timestamp()", lease_seconds)

    async def _insert(
        self,
        prediction_id: str,
        account: str,
        webhook_event: str,
        url: str,
        body: str,
        due: str,
        lease_seconds: float,
        **params: Any,
    ) -> ClaimedDelivery | None:
        """Queue a delivery; with `lease_seconds`, one due now with nothing ahead of it is leased to the caller
        in the same statement, so it can be sent without another round trip to claim it."""
        row = (
            await self._tx.conn.execute(
                text(_INSERT.format(due=due)),
                {
                    "delivery_id": str(uuid.uuid4()),
                    "prediction_id": prediction_id,
                    "account": account,
                    "webhook_event": webhook_event,
                    "url": url,
                    "body": body,
                    "lease": lease_seconds,
                    "token": str(uuid.uuid4()),
                    **params,
                },
            )
        ).mappings().one()
        if row["lease_token"] is None:
            return None
        return ClaimedDelivery(
            **{**row, "id": str(row["id"]), "lease_token": str(row["lease_token"]), "elapsed_seconds": 0.0}
        )


_INSERT = f"""
WITH due AS (SELECT {{due}} AS at),
take AS (
    SELECT :lease > 0 AND due.at <= clock_timestamp() AND NOT EXISTS (
        SELECT 1 FROM {SCHEMA}.deliveries WHERE prediction_id = :prediction_id AND status = 'pending') AS leased
    FROM due
)
INSERT INTO {SCHEMA}.deliveries (id, prediction_id, account, webhook_event, url, body, next_attempt_at,
    lease_until, lease_token, first_attempt_at)
SELECT :delivery_id, :prediction_id, :account, :webhook_event, :url, :body, due.at,
    CASE WHEN take.leased THEN clock_timestamp() + make_interval(secs => :lease) END,
    CASE WHEN take.leased THEN CAST(:token AS uuid) END,
    CASE WHEN take.leased THEN clock_timestamp() END
FROM due, take
RETURNING id, prediction_id, account, webhook_event, url, body, attempts, lease_token
"""

_CLAIM = f"""
WITH next AS (
    SELECT id FROM {SCHEMA}.deliveries d
    WHERE status = 'pending' AND next_attempt_at <= clock_timestamp()
      AND (lease_until IS NULL OR lease_until < clock_timestamp())
      AND NOT EXISTS (
        SELECT 1 FROM {SCHEMA}.deliveries earlier
        WHERE earlier.prediction_id = d.prediction_id AND earlier.status = 'pending' AND earlier.seq < d.seq)
    ORDER BY next_attempt_at, seq
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
UPDATE {SCHEMA}.deliveries d
SET lease_until = clock_timestamp() + make_interval(secs => :lease), lease_token = :token,
    first_attempt_at = COALESCE(d.first_attempt_at, clock_timestamp())
FROM next WHERE d.id = next.id
RETURNING d.id, d.prediction_id, d.account, d.webhook_event, d.url, d.body, d.attempts, d.lease_token,
    EXTRACT(EPOCH FROM clock_timestamp() - d.first_attempt_at)::float8 AS elapsed_seconds
"""

_RENEW = f"""
UPDATE {SCHEMA}.deliveries d
SET lease_until = clock_timestamp() + make_interval(secs => :lease),
    first_attempt_at = COALESCE(d.first_attempt_at, clock_timestamp())
WHERE d.id = :id AND d.lease_token = CAST(:token AS uuid) AND d.status = 'pending'
RETURNING d.id, d.prediction_id, d.account, d.webhook_event, d.url, d.body, d.attempts, d.lease_token,
    EXTRACT(EPOCH FROM clock_timestamp() - d.first_attempt_at)::float8 AS elapsed_seconds
"""

_NEXT_DUE = f"""
SELECT EXTRACT(EPOCH FROM min(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at)))
    - clock_timestamp())::float8
FROM {SCHEMA}.deliveries d
WHERE status = 'pending' AND NOT EXISTS (
    SELECT 1 FROM {SCHEMA}.deliveries earlier
    WHERE earlier.prediction_id = d.prediction_id AND earlier.status = 'pending' AND earlier.seq < d.seq)
"""


class PostgresDeliveryUnitOfWork:
    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    async def claim_next(self, lease_seconds: float) -> ClaimedDelivery | None:
        row = (
            await self._tx.conn.execute(text(_CLAIM), {"lease": lease_seconds, "token": str(uuid.uuid4())})
        ).mappings().first()
        if row is None:
            return None
        return ClaimedDelivery(**{**row, "id": str(row["id"]), "lease_token": str(row["lease_token"])})

    async def renew(self, delivery: ClaimedDelivery, lease_seconds: float) -> ClaimedDelivery | None:
        # A claim replaces the token under the row lock, so a matching token means nobody else holds the
        # delivery, even when our lease has run out in the meantime.
        row = (
            await self._tx.conn.execute(text(_RENEW), {"id": delivery.id, "token": delivery.lease_token,
                                                       "lease": lease_seconds})
        ).mappings().first()
        if row is None:
            return None
        return ClaimedDelivery(**{**row, "id": str(row["id"]), "lease_token": str(row["lease_token"])})

    async def release(self, deliveries: list[ClaimedDelivery]) -> None:
        for delivery in deliveries:
            await self._tx.conn.execute(
                text(
                    f"UPDATE {SCHEMA}.deliveries SET lease_until = NULL, lease_token = NULL,"
                    " first_attempt_at = CASE WHEN attempts = 0 THEN NULL ELSE first_attempt_at END"
                    " WHERE id = :id AND lease_token = :token"
                ),
                {"id": delivery.id, "token": delivery.lease_token},
            )

    async def seconds_until_next_due(self) -> float | None:
        value = (await self._tx.conn.execute(text(_NEXT_DUE))).scalar()
        return None if value is None else max(float(value), 0.0)

    async def record_attempt(self, delivery: ClaimedDelivery, record: AttemptRecord) -> bool:
        result = record.result
        data = {
            "prediction_id": delivery.prediction_id,
            "account": delivery.account,
            "delivery_id": delivery.id,
            "webhook_id": webhook_id(delivery.id),
            "webhook_event": delivery.webhook_event,
            "url": delivery.url,
            "status_code": result.status_code,
            "latency_ms": result.latency_ms,
            "error": result.error,
            "attempt": record.attempt,
            "outcome": record.outcome,
        }
        # Idempotent: a retry after a commit whose answer was lost finds its key and records nothing twice.
        if not await self._tx.track(ATTEMPT_KEYS, f"{delivery.id}/{delivery.lease_token}/{record.attempt}"):
            return True
        stream = attempt_stream(delivery.prediction_id)
        appended = await self._tx.append(stream, [new_event(DELIVERY_ATTEMPTED, stream, data)], expected_version=None)
        for event in appended:
            await ATTEMPTS.apply(self._tx, event)
        # Only the lease holder settles the delivery; an attempt made after the lease ran out is still recorded.
        status = "pending" if record.retry_in is not None else record.outcome
        settled = await self._tx.conn.execute(
            text(
                f"UPDATE {SCHEMA}.deliveries SET status = :status, attempts = GREATEST(attempts, :attempt),"
                " last_status_code = :code, last_error = :error, updated_at = now(),"
                " lease_until = NULL, lease_token = NULL,"
                " next_attempt_at = clock_timestamp() + make_interval(secs => :retry_in)"
                " WHERE id = :id AND lease_token = :token"
            ),
            {
                "status": status,
                "attempt": record.attempt,
                "code": result.status_code,
                "error": result.error,
                "retry_in": record.retry_in or 0.0,
                "id": delivery.id,
                "token": delivery.lease_token,
            },
        )
        return bool(settled.rowcount)


class PostgresSecretStore:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        # A secret never changes once created, so every process may keep what it has read.
        self._known: dict[str, str] = {}

    async def get_or_create(self, account: str) -> str:
        if account in self._known:
            return self._known[account]
        existing = await self._read(account)
        if existing is not None:
            self._known[account] = existing
            return existing
        stream = secret_stream(account)
        try:
            async with self._store.transaction() as tx:
                event = new_event(SECRET_CREATED, stream, {"account": account, "key": new_secret()})
                for stored in await tx.append(stream, [event], expected_version=0):
                    await SECRETS.apply(tx, stored)
        except ConcurrencyError:
            pass  # another request or replica created it first; theirs is the secret
        key = await self._read(account)
        assert key is not None
        self._known[account] = key
        return key

    async def _read(self, account: str) -> str | None:
        async with self._store.engine.connect() as conn:
            return (
                await conn.execute(text(f"SELECT key FROM {SCHEMA}.secrets WHERE account = :a"), {"a": account})
            ).scalar()


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
