"""Which webhook event a lifecycle event is, and whether the prediction's filter lets it through.

`prediction.created` is Replicate's `start` (sent as soon as the prediction exists, status `starting`);
`prediction.started` only moves the status to `processing` and triggers nothing, so a client never gets
two `start` webhooks. `output` and `logs` have no lifecycle events yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

WEBHOOK_EVENTS = ("start", "output", "logs", "completed")

_WEBHOOK_EVENT_BY_TYPE = {
    "prediction.created": "start",
    "prediction.succeeded": "completed",
    "prediction.failed": "completed",
    "prediction.canceled": "completed",
}


class DeliveryPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    webhook_event: str
    url: str


def webhook_event_for(event_type: str) -> str | None:
    return _WEBHOOK_EVENT_BY_TYPE.get(event_type)


def filter_allows(webhook_event: str, events_filter: Sequence[str] | None) -> bool:
    """No filter (or an empty one, which the API renders as all four) lets every event through."""
    return not events_filter or webhook_event in events_filter


def plan_delivery(view: dict[str, Any], event_type: str) -> DeliveryPlan | None:
    url = view.get("webhook")
    webhook_event = webhook_event_for(event_type)
    if not url or webhook_event is None:
        return None
    if not filter_allows(webhook_event, view.get("webhook_events_filter")):
        return None
    return DeliveryPlan(webhook_event=webhook_event, url=url)
