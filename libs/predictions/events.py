"""The typed contract of prediction events: what the scheduler records and what runners report.

Each model has a stable type name (`TYPE`) and a schema version (`SCHEMA_VERSION`). The data travels as the
envelope's `data` object, exactly as it always has:

- required fields are always present;
- optional fields are present exactly when the producer set them (even to null), so an event written by
  older code, which lacked a field, is read with that field's default and serialised back unchanged;
- fields this contract does not name (such as `spilled`, see `libs.blobs.spill`) are kept as they are.

Values a reader may find null because they travel by reference (`libs.blobs.spill`: output, output items,
logs, error) are typed as optional; folds restore them first (`restore_event`).
"""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from libs.events import Envelope, EventMetadata, new_event
from libs.predictions.status import PredictionStatus

Event = TypeVar("Event", bound="EventData")


class EventData(BaseModel):
    """One event type's data; subclasses set `TYPE` and `SCHEMA_VERSION`."""

    model_config = ConfigDict(frozen=True, extra="allow")

    TYPE: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1
    # Names older producers used for this type; readers accept them too.
    LEGACY_TYPES: ClassVar[tuple[str, ...]] = ()

    def to_data(self) -> dict[str, Any]:
        """The envelope's `data`, key for key what the producer set (declared fields first, in order)."""
        return self.model_dump(exclude_unset=True)

    @classmethod
    def from_data(cls: type[Event], data: dict[str, Any]) -> Event:
        return cls.model_validate(data)


# --- the scheduler's events, stream `prediction-<id>` -------------------------------------------------------


class PredictionEvent(EventData):
    id: str

    def to_envelope(self, metadata: EventMetadata | None = None) -> Envelope:
        """A new event of the prediction's stream (the store assigns its version and position)."""
        return new_event(self.TYPE, prediction_stream_id(self.id), self.to_data(), metadata=metadata,
                         schema_version=self.SCHEMA_VERSION)


class PredictionCreated(PredictionEvent):
    TYPE = "prediction.created"

    model: str
    version: str
    # Absent in the oldest events: such predictions ran on a CPU runner.
    hardware: str = "cpu"
    # Secret values are already replaced by a mask.
    input: dict[str, Any] = {}
    account: str = ""
    created_at: str
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    source: str = "api"
    # The output is an iterator: the prediction has a Server-Sent Events stream.
    stream: bool = False
    # Cancel-After: present only when asked for.
    deadline: str | None = None
    # `owner/name`: present only when created through a deployment.
    deployment: str | None = None
    # The secret part of `urls.stream`: present only with `stream`.
    stream_token: str | None = None


class PredictionStarted(PredictionEvent):
    TYPE = "prediction.started"

    started_at: str
    runner_id: str = ""
    instance_id: str | None = None
    # Seconds it waited for its instance to boot; present only after a cold boot.
    boot_time: float | None = None


class PredictionWaiting(PredictionEvent):
    """A line for the logs of a prediction still waiting for an instance."""

    TYPE = "prediction.waiting"

    logs: str = ""


class PredictionProgressed(PredictionEvent):
    """Iterator items and log text produced since the previous one, appended to `output` and `logs`."""

    TYPE = "prediction.progressed"

    seq: int = 0
    output_items: list[Any] | None = None
    logs: str | None = None


class PredictionEnded(PredictionEvent):
    """A terminal event: carries every field a finished prediction shows, so read models may skip to it."""

    STATUS: ClassVar[PredictionStatus]

    output: Any = None
    logs: str | None = None
    error: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    predict_time: float | None = None
    # What a usage record needs, so billing reads no other event of the prediction (absent in older events).
    account: str | None = None
    model: str | None = None
    version: str | None = None
    hardware: str | None = None


class PredictionSucceeded(PredictionEnded):
    TYPE = "prediction.succeeded"
    STATUS = PredictionStatus.SUCCEEDED

    # Seconds it waited for its instance to boot; present only after a cold boot.
    boot_time: float | None = None


class PredictionFailed(PredictionEnded):
    TYPE = "prediction.failed"
    STATUS = PredictionStatus.FAILED

    boot_time: float | None = None


class PredictionCanceled(PredictionEnded):
    """Canceled by the scheduler (with `reason`: `canceled` or `deadline`, and no `error`), or reported
    canceled by the runner (with `error`, without `reason`)."""

    TYPE = "prediction.canceled"
    STATUS = PredictionStatus.CANCELED

    reason: str | None = None
    boot_time: float | None = None


class PredictionDataRemoved(PredictionEvent):
    """The retention period of an ended API prediction is over: its input, output and logs go."""

    TYPE = "prediction.data_removed"

    removed_at: str | None = None


PREDICTION_EVENT_TYPES: dict[str, type[PredictionEvent]] = {
    cls.TYPE: cls
    for cls in (
        PredictionCreated, PredictionStarted, PredictionWaiting, PredictionProgressed, PredictionSucceeded,
        PredictionFailed, PredictionCanceled, PredictionDataRemoved,
    )
}
ENDED_EVENT_BY_STATUS: dict[str, type[PredictionEnded]] = {
    cls.STATUS: cls for cls in (PredictionSucceeded, PredictionFailed, PredictionCanceled)
}
# The types that end a prediction, spelled once.
TERMINAL_EVENT_TYPES: frozenset[str] = frozenset(cls.TYPE for cls in ENDED_EVENT_BY_STATUS.values())


def prediction_stream_id(prediction_id: str) -> str:
    return f"prediction-{prediction_id}"


def parse_prediction_event(event: Envelope) -> PredictionEvent | None:
    """The typed data of a scheduler prediction event; None for a type this contract does not know."""
    cls = PREDICTION_EVENT_TYPES.get(event.type)
    return None if cls is None else cls.from_data(event.data)


# --- the runner's reports, stream `runner-prediction-<id>` (NATS only) ----------------------------------------


class RunnerReport(EventData):
    # The last token of the report's subject (`runner.events.prediction.<kind>`) and of its id's seed.
    KIND: ClassVar[str]

    prediction_id: str
    runner_id: str = ""


class RunnerPredictionStarted(RunnerReport):
    TYPE = "runner.prediction_started"
    LEGACY_TYPES = ("prediction.started",)
    KIND = "started"

    started_at: str
    instance_id: str | None = None
    # When the instance that runs it became ready (the scheduler derives the boot time from it).
    instance_ready_at: str | None = None


class RunnerPredictionProgress(RunnerReport):
    TYPE = "runner.prediction_progress"
    LEGACY_TYPES = ("prediction.progress",)
    KIND = "progress"

    # 1, 2, … without gaps.
    seq: int = 0
    output_items: list[Any] | None = None
    logs: str | None = None


class RunnerPredictionCompleted(RunnerReport):
    TYPE = "runner.prediction_completed"
    LEGACY_TYPES = ("prediction.completed",)
    KIND = "completed"

    # `succeeded`, `failed` or `canceled` (a PredictionStatus; kept a string so an odd one is ignored, not refused).
    status: str
    output: Any = None
    logs: str | None = None
    error: str | None = None
    started_at: str | None = None
    completed_at: str
    predict_time: float | None = None
    instance_id: str | None = None
    # When the instance became ready, as in the start report: a completion whose start was never reported
    # (it ended within moments) brings the start with it.
    instance_ready_at: str | None = None


RUNNER_REPORT_CLASSES: tuple[type[RunnerReport], ...] = (
    RunnerPredictionStarted, RunnerPredictionProgress, RunnerPredictionCompleted,
)
RUNNER_REPORT_TYPES: dict[str, type[RunnerReport]] = {
    name: cls for cls in RUNNER_REPORT_CLASSES for name in (cls.TYPE, *cls.LEGACY_TYPES)
}
RUNNER_REPORT_BY_KIND: dict[str, type[RunnerReport]] = {cls.KIND: cls for cls in RUNNER_REPORT_CLASSES}


def runner_report_class(event_type: str, kind: str | None = None) -> type[RunnerReport] | None:
    """The report class for a type name, new or legacy; else, for an unknown type, the one of ``kind``."""
    cls = RUNNER_REPORT_TYPES.get(event_type)
    if cls is None and kind is not None:
        cls = RUNNER_REPORT_BY_KIND.get(kind)
    return cls


def parse_runner_report(event: Envelope, kind: str | None = None) -> RunnerReport | None:
    """A runner's report, whether it carries today's type name or the one runners used before."""
    cls = runner_report_class(event.type, kind)
    return None if cls is None else cls.from_data(event.data)
