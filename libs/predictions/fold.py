"""The one fold of a prediction's events, used by the scheduler, the gateway's read model and the webhook
dispatcher alike, so none of them can disagree with the API about what a prediction is.

`fold` takes a `PredictionState` (None before `prediction.created`) and an event of the prediction's stream and
returns the state after it. Services that keep the prediction as the API's JSON-shaped dict (the gateway's
read model, the dispatcher's views) use `apply_event`, which folds through the same function.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from libs.events import Envelope
from libs.predictions.events import (
    ENDED_EVENT_BY_STATUS,
    PredictionCreated,
    PredictionDataRemoved,
    PredictionEnded,
    PredictionProgressed,
    PredictionStarted,
    PredictionWaiting,
    RunnerPredictionCompleted,
    parse_prediction_event,
)
from libs.predictions.status import TERMINAL_STATUSES, PredictionStatus


@dataclass(frozen=True)
class PredictionState:
    """Everything the events say about one prediction; `status` is None until it is created."""

    id: str
    # Version of the last event folded in (the prediction stream's optimistic-concurrency version).
    stream_version: int = 0
    status: PredictionStatus | str | None = None
    model: str = ""
    version_id: str = ""
    hardware: str = "cpu"
    input: dict[str, Any] = field(default_factory=dict)
    account: str = ""
    created_at: str | None = None
    started_at: str | None = None
    completed_at: str | None = None
    output: Any = None
    logs: str = ""
    error: str | None = None
    predict_time: float | None = None
    # Seconds it waited for its instance to boot (a cold boot), from `prediction.started`.
    boot_time: float | None = None
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    source: str = "api"
    # The version's output is an iterator: the prediction has a Server-Sent Events stream.
    stream: bool = False
    # When Cancel-After was given: the moment the prediction is canceled if it has not ended.
    deadline: str | None = None
    # "owner/name" of the deployment it was created through, if any.
    deployment: str | None = None
    # The unguessable part of the stream URL (knowing a prediction's id is not enough to read its stream).
    stream_token: str | None = None
    # Input, output and logs were removed at the end of the retention period (`prediction.data_removed`).
    data_removed: bool = False
    # Sequence number of the last runner progress report folded in.
    progress_seq: int = 0
    # What the scheduler said while the prediction waited for an instance (`prediction.waiting`); it stays at
    # the head of the logs when the runner's own logs arrive with the result.
    waiting_logs: str = ""
    # The node (runner id) and instance that started it, from `prediction.started` (the scheduler fails a second
    # run elsewhere, naming this node; not part of the API view).
    runner_id: str = ""
    instance_id: str | None = None
    # Keys of a stored view that this state does not name, handed back unchanged by `to_view`.
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    # --- the API-shaped dict that read models store -----------------------------------------------------------

    def to_view(self) -> dict[str, Any]:
        view: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "version": self.version_id,
            "input": self.input,
            "output": self.output,
            "logs": self.logs,
            "error": self.error,
            "status": None if self.status is None else str(self.status),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "completed_at": self.completed_at,
            "predict_time": self.predict_time,
            "source": self.source,
            "webhook": self.webhook,
            "webhook_events_filter": self.webhook_events_filter,
            "account": self.account,
            "stream": self.stream,
            "deadline": self.deadline,
            "deployment": self.deployment,
            "stream_token": self.stream_token,
            "data_removed": self.data_removed,
            **self.extra,
        }
        if self.boot_time is not None:
            view["boot_time"] = self.boot_time
        view["stream_version"] = self.stream_version
        return view

    @classmethod
    def from_view(cls, view: Mapping[str, Any]) -> PredictionState:
        return cls(
            id=view["id"],
            stream_version=int(view.get("stream_version") or 0),
            status=_status(view.get("status")),
            model=view.get("model") or "",
            version_id=view.get("version") or "",
            input=view.get("input", {}),
            account=view.get("account") or "",
            created_at=view.get("created_at"),
            started_at=view.get("started_at"),
            completed_at=view.get("completed_at"),
            output=view.get("output"),
            logs=view.get("logs") or "",
            error=view.get("error"),
            predict_time=view.get("predict_time"),
            boot_time=view.get("boot_time"),
            webhook=view.get("webhook"),
            webhook_events_filter=view.get("webhook_events_filter"),
            source=view.get("source") or "api",
            stream=bool(view.get("stream", False)),
            deadline=view.get("deadline"),
            deployment=view.get("deployment"),
            stream_token=view.get("stream_token"),
            data_removed=bool(view.get("data_removed", False)),
            extra={key: value for key, value in view.items() if key not in _VIEW_KEYS},
        )


_VIEW_KEYS = frozenset({
    "id", "model", "version", "input", "output", "logs", "error", "status", "created_at", "started_at",
    "completed_at", "predict_time", "boot_time", "source", "webhook", "webhook_events_filter", "account", "stream",
    "deadline", "deployment", "stream_token", "data_removed", "stream_version",
})
# What a terminal event carries over onto the prediction (when present and not null).
_ENDED_FIELDS = ("output", "logs", "error", "started_at", "completed_at", "predict_time", "boot_time")
# What an end recorded over an answered end keeps when it does not say (the waiting lines and the boot time
# are the scheduler's own, in the view before the answer too).
_KEPT_ON_A_RECORDED_END = ("logs", "boot_time")


def _status(value: Any) -> PredictionStatus | str | None:
    if value is None:
        return None
    try:
        return PredictionStatus(value)
    except ValueError:
        return str(value)  # a status this contract does not know is shown as it was stored


def fold(state: PredictionState | None, event: Envelope) -> PredictionState:
    """The state after ``event``; event types this contract does not know only advance the version.

    Raises ValueError for an event before the prediction's `prediction.created`.
    """
    typed = parse_prediction_event(event)
    version = event.stream_version
    if isinstance(typed, PredictionCreated):
        return _created(typed, version)
    if state is None:
        raise ValueError(f"{event.type} for {event.stream_id} arrived before prediction.created")
    if isinstance(typed, PredictionProgressed):
        return _progressed(state, typed, version)
    if isinstance(typed, PredictionStarted):
        if state.is_terminal:
            return replace(state, stream_version=version)
        boot_time = typed.boot_time if typed.boot_time is not None else state.boot_time
        return replace(state, stream_version=version, status=PredictionStatus.PROCESSING,
                       started_at=typed.started_at, boot_time=boot_time, runner_id=typed.runner_id or "",
                       instance_id=typed.instance_id)
    if isinstance(typed, PredictionWaiting):
        # The scheduler says why a starting prediction waits (queued, an instance booting, no hardware).
        if state.status != PredictionStatus.STARTING or not typed.logs:
            return replace(state, stream_version=version)
        return replace(state, stream_version=version, logs=state.logs + typed.logs,
                       waiting_logs=state.waiting_logs + typed.logs)
    if isinstance(typed, PredictionEnded):
        changes = {key: getattr(typed, key, None) for key in _ENDED_FIELDS}
        if state.is_terminal:
            # An end on an end: only a read model's `Prefer: wait` answer (folded from the runner's report) comes
            # before the end the scheduler records, and the recorded end is the truth, whole. A cancel recorded
            # just before the report ended it without the model's output, so what the answer said goes.
            kept = {key: getattr(state, key) for key in _KEPT_ON_A_RECORDED_END if changes[key] is None}
            return replace(state, stream_version=version, status=typed.STATUS, **{**changes, **kept})
        return replace(state, stream_version=version, status=typed.STATUS,
                       **{key: value for key, value in changes.items() if value is not None})
    if isinstance(typed, PredictionDataRemoved):
        # The retention period is over: the prediction stays, its input, output and logs do not.
        return replace(state, stream_version=version, input={}, output=None, logs="", data_removed=True)
    return replace(state, stream_version=version)


def fold_all(prediction_id: str, events: Iterable[Envelope]) -> PredictionState:
    """The state after every event of the prediction's stream, in order (no event: not created yet)."""
    state: PredictionState | None = None
    for event in events:
        state = fold(state, event)
    return state if state is not None else PredictionState(id=prediction_id)


def apply_event(view: dict[str, Any] | None, event: Envelope) -> dict[str, Any]:
    """`fold` on the API-shaped dict that read models store: the view after ``event``."""
    state = None if view is None or event.type == PredictionCreated.TYPE else PredictionState.from_view(view)
    return fold(state, event).to_view()


def _created(event: PredictionCreated, version: int) -> PredictionState:
    return PredictionState(
        id=event.id,
        stream_version=version,
        status=PredictionStatus.STARTING,
        model=event.model,
        version_id=event.version,
        hardware=event.hardware,
        input=event.input,
        account=event.account,
        created_at=event.created_at,
        webhook=event.webhook,
        webhook_events_filter=event.webhook_events_filter,
        source=event.source,
        stream=event.stream,
        deadline=event.deadline,
        deployment=event.deployment,
        stream_token=event.stream_token,
    )


def _progressed(state: PredictionState, event: PredictionProgressed, version: int) -> PredictionState:
    """Output items and log text produced so far are appended; a terminal prediction is left as it is."""
    if state.is_terminal:
        return replace(state, stream_version=version)
    output = state.output
    if event.output_items:
        output = (output if isinstance(output, list) else []) + list(event.output_items)
    status = PredictionStatus.PROCESSING if state.status == PredictionStatus.STARTING else state.status
    return replace(state, stream_version=version, status=status, output=output,
                   logs=state.logs + (event.logs or ""), progress_seq=event.seq or state.progress_seq)


def view_after_completion(view: dict[str, Any], report: RunnerPredictionCompleted) -> dict[str, Any] | None:
    """The view a prediction still `starting` will have once the scheduler records ``report`` (a runner's
    completion, which brings the start with it), folded the way the scheduler decides it; None when that
    cannot be known from here: the prediction has moved on (a start, progress or an end is recorded), or its
    instance booted for it (its boot time is the scheduler's to work out from the instance's history).

    This answers a `Prefer: wait` request as soon as the completion is stored in JetStream, without waiting
    for the scheduler's transaction, its relay and the read model; the events that follow say the same.
    """
    if view.get("status") != PredictionStatus.STARTING or report.status not in TERMINAL_STATUSES:
        return None
    if report.instance_id:
        ready = report.instance_ready_at
        if ready is None or _instant(ready) > _instant(view["created_at"]):
            return None
    # While a prediction is starting its logs are the scheduler's waiting lines; they head the runner's logs.
    waiting, logs = view.get("logs") or "", report.logs or ""
    if waiting and not logs.startswith(waiting):
        logs = waiting + logs
    ended = ENDED_EVENT_BY_STATUS[report.status](
        id=view["id"], output=report.output, logs=logs, error=report.error, started_at=report.started_at,
        completed_at=report.completed_at, predict_time=report.predict_time,
    )
    # Numbered as the scheduler will number them: `prediction.started`, then the end.
    version = int(view.get("stream_version") or 1) + 2
    return apply_event(view, ended.to_envelope().model_copy(update={"stream_version": version}))


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
