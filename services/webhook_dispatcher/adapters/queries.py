"""Reads for the gRPC service: a prediction's delivery attempts and an account's recent summary."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.webhook_dispatcher.projections import SCHEMA

_SUMMARY = f"""
SELECT webhook_event,
       count(*) AS attempts,
       count(*) FILTER (WHERE outcome = 'delivered') AS delivered,
       count(*) FILTER (WHERE outcome = 'failed') AS failed,
       count(*) FILTER (WHERE outcome = 'retrying') AS retried
FROM {SCHEMA}.attempts
WHERE account = :account AND attempted_at > now() - make_interval(hours => :hours)
GROUP BY webhook_event ORDER BY webhook_event
"""

_LATENCY = f"""
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms) AS p99
FROM {SCHEMA}.attempts
WHERE account = :account AND attempted_at > now() - make_interval(hours => :hours) AND status_code IS NOT NULL
"""


class AttemptQueries:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def list_attempts(self, prediction_id: str, account: str) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                text(
                    f"SELECT * FROM {SCHEMA}.attempts WHERE prediction_id = :id AND account = :account"
                    " ORDER BY attempted_at, attempt"
                ),
                {"id": prediction_id, "account": account},
            )
            return [dict(row) for row in rows.mappings()]

    async def summary(self, account: str, hours: int) -> dict[str, Any]:
        params = {"account": account, "hours": hours}
        async with self._engine.connect() as conn:
            events = [dict(row) for row in (await conn.execute(text(_SUMMARY), params)).mappings()]
            latency = (await conn.execute(text(_LATENCY), params)).mappings().one()
        return {
            "hours": hours,
            "attempts": sum(e["attempts"] for e in events),
            # An attempt ends its delivery when it is `delivered` or `failed`; a `retrying` one leads to another.
            "delivered": sum(e["delivered"] for e in events),
            "failed": sum(e["failed"] for e in events),
            "retried": sum(e["retried"] for e in events),
            "latency_p50_ms": float(latency["p50"] or 0.0),
            "latency_p99_ms": float(latency["p99"] or 0.0),
            "events": events,
        }
