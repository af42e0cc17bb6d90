"""Applying a prediction's events to the view strictly in stream order, whatever order NATS hands them over."""

from __future__ import annotations

from enum import Enum
from typing import Any

from libs.predictions.events import PredictionCreated

PREDICTION_CREATED = PredictionCreated.TYPE


class Placement(Enum):
    APPLY = "apply"
    ALREADY_APPLIED = "already_applied"
    GAP = "gap"


def place(event_type: str, event_version: int, stored_version: int | None) -> Placement:
    """Where an event stands relative to the view: next in line, already folded in, or ahead of a gap."""
    if event_type == PREDICTION_CREATED:
        return Placement.APPLY if stored_version is None else Placement.ALREADY_APPLIED
    if stored_version is None:
        return Placement.GAP
    if event_version <= stored_version:
        return Placement.ALREADY_APPLIED
    if event_version == stored_version + 1:
        return Placement.APPLY
    return Placement.GAP


def prediction_id_of(stream_id: str, data: dict[str, Any]) -> str:
    return str(data.get("id") or stream_id.removeprefix("prediction-"))
