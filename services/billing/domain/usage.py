"""What billing remembers about a prediction and the usage record it writes when the prediction ends."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

# The contract's pure modules (the package also renders and restores, which needs the object store).
from libs.predictions.events import TERMINAL_EVENT_TYPES, PredictionCreated

PREDICTION_CREATED = PredictionCreated.TYPE
TERMINAL_TYPES = TERMINAL_EVENT_TYPES
USAGE_RECORDED = "usage.recorded"


class BilledPrediction(BaseModel):
    """The facts of `prediction.created` that a usage record needs."""

    model_config = ConfigDict(frozen=True)

    prediction_id: str
    account: str
    model: str
    version: str
    hardware: str

    @classmethod
    def from_terminal(cls, data: dict[str, Any]) -> BilledPrediction | None:
        """From an end that carries the facts itself (every end since they do; None for older ones)."""
        if not data.get("account") or not data.get("version"):
            return None
        return cls.from_created(data)

    @classmethod
    def from_created(cls, data: dict[str, Any]) -> BilledPrediction:
        return cls(
            prediction_id=data["id"],
            account=data.get("account") or "",
            model=data.get("model") or "",
            version=data.get("version") or "",
            hardware=data.get("hardware") or "cpu",
        )


def usage_stream(prediction_id: str) -> str:
    """One stream per prediction, so `expected_version=0` makes recording usage at-most-once."""
    return f"usage-{prediction_id}"


def prediction_id_of(stream_id: str, data: dict[str, Any]) -> str:
    return str(data.get("id") or stream_id.removeprefix("prediction-"))


def usage_recorded(prediction: BilledPrediction, terminal: dict[str, Any], occurred_at: str) -> dict[str, Any]:
    """The `usage.recorded` payload; a prediction canceled before it ran bills zero seconds."""
    return {
        "prediction_id": prediction.prediction_id,
        "account": prediction.account,
        "model": prediction.model,
        "version": prediction.version,
        "hardware": prediction.hardware,
        "predict_time": float(terminal.get("predict_time") or 0.0),
        "completed_at": terminal.get("completed_at") or occurred_at,
    }
