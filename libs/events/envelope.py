"""The envelope every event travels in, in PostgreSQL and on NATS alike."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class EventMetadata(BaseModel):
    """Who caused an event and which trace it belongs to."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    actor: str | None = None
    # A last subject token the event is published under, for consumers that want only some of a stream's
    # events and filter on it (a prediction's events carry `webhook` when it has one).
    subject_tag: str | None = None


class Envelope(BaseModel):
    """A recorded fact: a stable `type` string plus a schema version, never a Python path.

    `position` is the global order in the producer's event log; it is None until the event is stored.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    type: str
    schema_version: int = 1
    stream_id: str
    stream_version: int = 0
    position: int | None = None
    occurred_at: datetime = Field(default_factory=utcnow)
    data: dict[str, Any] = Field(default_factory=dict)
    metadata: EventMetadata = Field(default_factory=EventMetadata)

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, raw: bytes | str) -> Envelope:
        return cls.model_validate_json(raw)


def new_event(
    type: str,
    stream_id: str,
    data: dict[str, Any],
    *,
    metadata: EventMetadata | None = None,
    schema_version: int = 1,
) -> Envelope:
    """An event not yet stored: the store assigns its stream version and position."""
    return Envelope(
        type=type,
        stream_id=stream_id,
        data=data,
        schema_version=schema_version,
        metadata=metadata or EventMetadata(),
    )
