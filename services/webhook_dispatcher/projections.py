"""Read models of the dispatcher's own log, written in the transaction that appends the event and rebuildable.

`secrets` folds `webhook.secret_created`; `attempts` folds `webhook.delivery_attempted`. The `predictions`
view and the `deliveries` queue are not projections of this log: the view caches the scheduler's lifecycle
events, and the queue is work, so `rebuild-projections` leaves both alone (replaying lifecycle events would
queue every webhook again).
"""

from __future__ import annotations

from sqlalchemy import text

from libs.events import Envelope
from libs.eventstore import Transaction
from libs.eventstore.projections import Projection

SCHEMA = "webhook_dispatcher"
SECRET_CREATED = "webhook.secret_created"
DELIVERY_ATTEMPTED = "webhook.delivery_attempted"


class SecretsProjection:
    name = "secrets"
    tables = ("secrets",)

    async def apply(self, tx: Transaction, event: Envelope) -> None:
        if event.type != SECRET_CREATED:
            return
        await tx.conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.secrets (account, key, created_at) VALUES (:account, :key, :at)"
                " ON CONFLICT (account) DO NOTHING"
            ),
            {"account": event.data["account"], "key": event.data["key"], "at": event.occurred_at},
        )


class AttemptsProjection:
    name = "attempts"
    tables = ("attempts",)

    async def apply(self, tx: Transaction, event: Envelope) -> None:
        if event.type != DELIVERY_ATTEMPTED:
            return
        data = event.data
        await tx.conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.attempts (event_id, prediction_id, account, delivery_id, webhook_event, url,"
                " status_code, latency_ms, error, attempt, outcome, attempted_at) VALUES (:event_id, :prediction_id,"
                " :account, :delivery_id, :webhook_event, :url, :status_code, :latency_ms, :error, :attempt,"
                " :outcome, :attempted_at) ON CONFLICT (event_id) DO NOTHING"
            ),
            {
                "event_id": event.id,
                "prediction_id": data["prediction_id"],
                "account": data.get("account") or "",
                "delivery_id": data["delivery_id"],
                "webhook_event": data["webhook_event"],
                "url": data["url"],
                "status_code": data.get("status_code"),
                "latency_ms": data.get("latency_ms") or 0.0,
                "error": data.get("error"),
                "attempt": data["attempt"],
                "outcome": data.get("outcome") or "failed",
                "attempted_at": event.occurred_at,
            },
        )


SECRETS = SecretsProjection()
ATTEMPTS = AttemptsProjection()
PROJECTIONS: list[Projection] = [SECRETS, ATTEMPTS]
