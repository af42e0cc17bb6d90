"""Owners' decisions about a prediction beyond its lifecycle: shared by link, data removed.

They are events in the gateway's own log (`prediction-page-<id>`: `prediction.shared`,
`prediction.unshared`, `prediction.data_removed`), folded into `prediction_pages` in the same transaction.
Removing data also blanks the prediction's input, output and logs in the read model (and marks it
`data_removed`, as Replicate's API does); `rebuild-projections` applies that again after replaying.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text

from libs.events import Envelope, EventMetadata, new_event
from libs.eventstore import EventStore, Transaction
from libs.eventstore.retry import retry_on_conflict

SCHEMA = "gateway"
SHARED = "prediction.shared"
UNSHARED = "prediction.unshared"
DATA_REMOVED = "prediction.data_removed"
_TYPES = (SHARED, UNSHARED, DATA_REMOVED)

# What a prediction whose data was removed shows in place of its input, output and logs.
REMOVED_FIELDS: dict[str, Any] = {"input": {}, "output": None, "logs": "", "data_removed": True}


def stream_id(prediction_id: str) -> str:
    return f"prediction-page-{prediction_id}"


@dataclass(frozen=True)
class PageState:
    shared: bool = False
    data_removed_at: datetime | None = None


class PagesProjection:
    """`prediction_pages`, folded from the gateway's own log; rebuilt by `rebuild_from_log`."""

    name = "gateway-prediction-pages"
    tables = ("prediction_pages",)

    async def apply(self, tx: Transaction, event: Envelope) -> None:
        if event.type not in _TYPES:
            return
        prediction_id = event.data["id"]
        params: dict[str, Any]
        if event.type == DATA_REMOVED:
            assignment, params = "data_removed_at = :at", {"at": event.occurred_at}
        else:
            assignment, params = "shared = :shared", {"shared": event.type == SHARED}
        await tx.conn.execute(
            text(
                f"INSERT INTO {SCHEMA}.prediction_pages (id) VALUES (:id) ON CONFLICT (id) DO NOTHING"
            ),
            {"id": prediction_id},
        )
        await tx.conn.execute(
            text(f"UPDATE {SCHEMA}.prediction_pages SET {assignment} WHERE id = :id"), {"id": prediction_id, **params}
        )


async def blank_removed_views(conn: Any) -> None:
    """Blank input, output and logs in the read model of every prediction whose data was removed."""
    await conn.execute(
        text(
            f"UPDATE {SCHEMA}.predictions SET view = view || CAST(:removed AS jsonb)"
            f" WHERE id IN (SELECT id FROM {SCHEMA}.prediction_pages WHERE data_removed_at IS NOT NULL)"
        ),
        {"removed": _removed_json()},
    )


def _removed_json() -> str:
    return json.dumps(REMOVED_FIELDS)


class PredictionPages:
    def __init__(self, store: EventStore) -> None:
        self._store = store
        self._projection = PagesProjection()

    async def state(self, prediction_id: str) -> PageState:
        async with self._store.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(f"SELECT shared, data_removed_at FROM {SCHEMA}.prediction_pages WHERE id = :id"),
                    {"id": prediction_id},
                )
            ).first()
        return PageState(row.shared, row.data_removed_at) if row else PageState()

    async def record(self, prediction_id: str, event_type: str, actor: str) -> None:
        """Append `event_type` for the prediction and apply it, in one transaction."""

        async def attempt() -> None:
            event = new_event(event_type, stream_id(prediction_id), {"id": prediction_id},
                              metadata=EventMetadata(actor=actor))
            async with self._store.transaction() as tx:
                for stored in await tx.append(stream_id(prediction_id), [event], expected_version=None):
                    await self._projection.apply(tx, stored)
                if event_type == DATA_REMOVED:
                    await tx.conn.execute(
                        text(f"UPDATE {SCHEMA}.predictions SET view = view || CAST(:removed AS jsonb) WHERE id = :id"),
                        {"removed": _removed_json(), "id": prediction_id},
                    )

        await retry_on_conflict(attempt)
