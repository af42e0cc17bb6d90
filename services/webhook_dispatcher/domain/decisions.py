"""Which webhook event a lifecycle event is, and whether the prediction's filter lets it through.

`prediction.created` is Replicate's `start` (sent as soon as the prediction exists, status `starting`);
`prediction.started` only moves the status to `processing` and triggers nothing, so a client never gets
two `start` webhooks. `prediction.progressed` carries new output items and/or log text: `output` when it has
items, `logs` when it has text. Those two are throttled together as one coalesced progress delivery, named
`output` when output is among what it carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from libs.predictions.events import TERMINAL_EVENT_TYPES, PredictionCreated, PredictionProgressed
from libs.predictions.status import TERMINAL_STATUSES

WEBHOOK_EVENTS = ("start", "output", "logs", "completed")
FINAL = "completed"
THROTTLED = ("output", "logs")

_WEBHOOK_EVENT_BY_TYPE = {PredictionCreated.TYPE: "start", **{name: FINAL for name in TERMINAL_EVENT_TYPES}}
PROGRESSED = PredictionProgressed.TYPE


class DeliveryPlan(BaseModel):
    model_config = ConfigDict(frozen=True)

    webhook_event: str
    url: str

    @property
    def throttled(self) -> bool:
        return self.webhook_event in THROTTLED


def webhook_events_for(event_type: str, data: dict[str, Any]) -> list[str]:
    if event_type == PROGRESSED:
        return [name for name, present in (("output", data.get("output_items")), ("logs", data.get("logs"))) if present]
    webhook_event = _WEBHOOK_EVENT_BY_TYPE.get(event_type)
    return [webhook_event] if webhook_event else []


def filter_allows(webhook_event: str, events_filter: Sequence[str] | None) -> bool:
    """No filter (or an empty one, which the API renders as all four) lets every event through."""
    return not events_filter or webhook_event in events_filter


def plan_delivery(view: dict[str, Any], event_type: str, data: dict[str, Any]) -> DeliveryPlan | None:
    """The webhook `event` calls for on the prediction as `view` shows it after the event, if any."""
    url = view.get("webhook")
    if not url:
        return None
    if event_type == PROGRESSED and view.get("status") in TERMINAL_STATUSES:
        return None
    allowed = [e for e in webhook_events_for(event_type, data) if filter_allows(e, view.get("webhook_events_filter"))]
    if not allowed:
        return None
    return DeliveryPlan(webhook_event=allowed[0], url=url)
