"""HTTP request bodies, as Replicate's OpenAPI defines them (unknown fields are refused)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WebhookEvent = Literal["start", "output", "logs", "completed"]


class PredictionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any]
    webhook: str | None = None
    webhook_events_filter: list[WebhookEvent] | None = None
    # Accepted for the official clients: `stream` is sent by replicate.stream(), `webhook_completed` is legacy.
    stream: bool | None = None
    webhook_completed: str | None = None


class VersionPredictionRequest(PredictionRequest):
    version: str = Field(min_length=1)
