"""`billing.usage`: one row per billed prediction, derived from `usage.recorded` events."""

from __future__ import annotations

from libs.events import Envelope
from libs.eventstore import OneStatement, Transaction
from services.billing.domain.usage import USAGE_RECORDED

SCHEMA = "billing"


class UsageProjection:
    name = "billing-usage"
    tables = ("usage",)

    async def apply(self, tx: Transaction | OneStatement, event: Envelope) -> None:
        if event.type != USAGE_RECORDED:
            return
        data = event.data
        await tx.also(
            f"INSERT INTO {SCHEMA}.usage (prediction_id, account, hardware, predict_time, recorded_at)"
            " VALUES (:prediction_id, :account, :hardware, :predict_time, :recorded_at)"
            " ON CONFLICT (prediction_id) DO UPDATE SET account = EXCLUDED.account,"
            " hardware = EXCLUDED.hardware, predict_time = EXCLUDED.predict_time,"
            " recorded_at = EXCLUDED.recorded_at",
            {
                "prediction_id": data["prediction_id"],
                "account": data["account"],
                "hardware": data["hardware"],
                "predict_time": data["predict_time"],
                "recorded_at": event.occurred_at,
            },
        )


PROJECTIONS = [UsageProjection()]
