"""Prediction aggregate: starting → processing → succeeded | failed | canceled.

`decide_*` functions take the current state and return the events to record (possibly none, which makes
every transition idempotent: a duplicate or late runner report changes nothing); `evolve` folds events.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from libs.events import EventMetadata, Envelope, new_event

TERMINAL = frozenset({"succeeded", "failed", "canceled"})


def new_prediction_id() -> str:
    """26 lowercase base32 characters, the shape of Replicate's ids."""
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")


def stream_id(prediction_id: str) -> str:
    return f"prediction-{prediction_id}"


@dataclass(frozen=True)
class Prediction:
    id: str
    version: int = 0
    status: str = "new"
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
    webhook: str | None = None
    webhook_events_filter: list[str] | None = None
    source: str = "api"
    # The version's output is an iterator: the prediction has a Server-Sent Events stream.
    stream: bool = False
    # When Cancel-After was given: the moment the prediction is canceled if it has not ended.
    deadline: str | None = None
    # "owner/name" of the deployment it was created through, if any.
    deployment: str | None = None
    # The unguessable part of the stream URL, so that knowing a prediction's id (it is in every output URL)
    # is not enough to read its stream.
    stream_token: str | None = None
    # Sequence number of the last runner progress report folded in.
    progress_seq: int = 0
    # Input, output and logs were removed at the end of the retention period (`prediction.data_removed`).
    data_removed: bool = False
    # What the scheduler said while the prediction waited for an instance (`prediction.waiting`); it stays at
    # the head of the logs when the runner's own logs arrive with the result.
    waiting_logs: str = ""
    # Seconds it waited for its instance to boot (a cold boot), from `prediction.started`.
    boot_time: float | None = None
    # The node (runner id) and instance that started it, from `prediction.started`.
    runner_id: str = ""
    instance_id: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL


def evolve(state: Prediction, event: Envelope) -> Prediction:
    data = event.data
    kind = event.type.removeprefix("prediction.")
    common = {"version": event.stream_version}
    if kind == "created":
        return replace(
            state,
            **common,
            status="starting",
            model=data["model"],
            version_id=data["version"],
            hardware=data.get("hardware", "cpu"),
            input=data.get("input", {}),
            account=data.get("account", ""),
            created_at=data["created_at"],
            webhook=data.get("webhook"),
            webhook_events_filter=data.get("webhook_events_filter"),
            source=data.get("source", "api"),
            stream=bool(data.get("stream", False)),
            deadline=data.get("deadline"),
            deployment=data.get("deployment"),
            stream_token=data.get("stream_token"),
        )
    if kind == "progressed":
        items = data.get("output_items") or []
        output = (state.output if isinstance(state.output, list) else []) + list(items) if items else state.output
        return replace(
            state,
            **common,
            status="processing" if state.status == "starting" else state.status,
            output=output,
            logs=state.logs + (data.get("logs") or ""),
            progress_seq=int(data.get("seq") or state.progress_seq),
        )
    if kind == "started":
        return replace(state, **common, status="processing", started_at=data["started_at"],
                       boot_time=data.get("boot_time", state.boot_time), runner_id=data.get("runner_id") or "",
                       instance_id=data.get("instance_id"))
    if kind == "waiting":
        if state.is_terminal:
            return replace(state, **common)
        line = data.get("logs") or ""
        return replace(state, **common, logs=state.logs + line, waiting_logs=state.waiting_logs + line)
    if kind in TERMINAL:
        return replace(
            state,
            **common,
            status=kind,
            started_at=data.get("started_at") or state.started_at,
            completed_at=data["completed_at"],
            output=data.get("output"),
            logs=data.get("logs") or state.logs,
            error=data.get("error"),
            predict_time=data.get("predict_time"),
        )
    if kind == "data_removed":
        return replace(state, **common, input={}, output=None, logs="", data_removed=True)
    return replace(state, **common)


def load(prediction_id: str, events: list[Envelope]) -> Prediction:
    state = Prediction(id=prediction_id)
    for event in events:
        state = evolve(state, event)
    return state


def _event(state: Prediction, kind: str, data: dict[str, Any], metadata: EventMetadata) -> Envelope:
    return new_event(f"prediction.{kind}", stream_id(state.id), {"id": state.id, **data}, metadata=metadata)


def decide_create(
    prediction_id: str,
    *,
    model: str,
    version_id: str,
    hardware: str,
    input: dict[str, Any],
    account: str,
    created_at: datetime,
    webhook: str | None,
    webhook_events_filter: list[str] | None,
    source: str,
    metadata: EventMetadata,
    stream: bool = False,
    deadline: datetime | None = None,
    deployment: str | None = None,
) -> list[Envelope]:
    """``input`` must already have its secret values redacted: events are stored and published."""
    state = Prediction(id=prediction_id)
    data = {
        "model": model,
        "version": version_id,
        "hardware": hardware,
        "input": input,
        "account": account,
        "created_at": created_at.isoformat(),
        "webhook": webhook,
        "webhook_events_filter": webhook_events_filter,
        "source": source,
        "stream": stream,
    }
    if deadline is not None:
        data["deadline"] = deadline.isoformat()
    if deployment is not None:
        data["deployment"] = deployment
    if stream:
        data["stream_token"] = secrets.token_urlsafe(24)
    return [_event(state, "created", data, metadata)]


def decide_start(
    state: Prediction, *, started_at: str, runner_id: str, metadata: EventMetadata,
    instance_id: str | None = None, boot_time: float | None = None,
) -> list[Envelope]:
    """``boot_time``: seconds the prediction waited for its instance to boot (absent when one was ready)."""
    if state.status != "starting":
        return []
    data: dict[str, Any] = {"started_at": started_at, "runner_id": runner_id}
    if instance_id:
        data["instance_id"] = instance_id
    if boot_time is not None:
        data["boot_time"] = boot_time
    return [_event(state, "started", data, metadata)]


def lost_node_error(node: str, why: str = "") -> str:
    """The error of a prediction whose predict() had started on a node that was lost: it is never run twice."""
    return f"The node {node or '(unknown)'} running this prediction was lost{why}; it is not run again"


def is_second_run(state: Prediction, *, started_at: str | None, runner_id: str, instance_id: str | None) -> bool:
    """A runner reports running a prediction that another run had already started: its job came back because
    the node running it stopped confirming it (killed, restarted, cut off). A repeat of the recorded start's
    own report (same node, instance and start) is not a second run."""
    if state.status != "processing" or not state.runner_id:
        return False
    if runner_id != state.runner_id or (instance_id or None) != (state.instance_id or None):
        return True
    return started_at is not None and started_at != state.started_at


def decide_lost(state: Prediction, *, node: str, completed_at: str, metadata: EventMetadata,
                why: str = "") -> list[Envelope]:
    """Fail a started prediction whose node was lost, naming it, with what it had logged so far."""
    return decide_complete(
        state, status="failed", output=state.output, logs=state.logs[len(state.waiting_logs):],
        error=lost_node_error(node, why), started_at=state.started_at, completed_at=completed_at,
        predict_time=None, runner_id="", metadata=metadata,
    )


def decide_wait(state: Prediction, *, logs: str, metadata: EventMetadata) -> list[Envelope]:
    """A line for the logs of a prediction still waiting for an instance (queued, booting, no hardware)."""
    if state.status != "starting" or not logs:
        return []
    return [_event(state, "waiting", {"logs": logs}, metadata)]


def decide_complete(
    state: Prediction,
    *,
    status: str,
    output: Any,
    logs: str,
    error: str | None,
    started_at: str | None,
    completed_at: str,
    predict_time: float | None,
    runner_id: str,
    metadata: EventMetadata,
) -> list[Envelope]:
    """A runner's result; ignored once the prediction is terminal (e.g. canceled while it ran)."""
    if state.is_terminal or status not in TERMINAL:
        return []
    events: list[Envelope] = []
    if state.status == "starting" and started_at is not None:
        events += decide_start(state, started_at=started_at, runner_id=runner_id, metadata=metadata)
    if state.waiting_logs and not logs.startswith(state.waiting_logs):
        logs = state.waiting_logs + logs
    data = {
        "output": output,
        "logs": logs,
        "error": error,
        "started_at": started_at or state.started_at,
        "completed_at": completed_at,
        "predict_time": predict_time,
    }
    if state.boot_time is not None:
        # The end carries every field a finished prediction shows: read models may skip to it.
        data["boot_time"] = state.boot_time
    return events + [_event(state, status, data, metadata)]


class ProgressOutOfOrder(Exception):
    """A progress report arrived before an earlier one (or before the start): it must wait for them."""


def decide_progress(
    state: Prediction, *, seq: int, output_items: list[Any], logs: str, metadata: EventMetadata
) -> list[Envelope]:
    """Output items and logs a runner produced since its previous report, appended in report order.

    Raises ProgressOutOfOrder when an earlier report (or the start) has not been recorded yet.
    """
    if state.is_terminal or seq <= state.progress_seq:
        return []
    if state.status == "starting" or seq != state.progress_seq + 1:
        raise ProgressOutOfOrder(f"progress {seq} of {state.id} after {state.progress_seq}")
    return [_event(state, "progressed", {"seq": seq, "output_items": output_items, "logs": logs}, metadata)]


def decide_cancel(
    state: Prediction, *, completed_at: str, metadata: EventMetadata, reason: str = "canceled"
) -> list[Envelope]:
    """Cancel a prediction that has not ended; ``reason`` is `canceled` (asked for) or `deadline` (Cancel-After)."""
    if state.is_terminal:
        return []
    data = {
        "output": state.output,
        "logs": state.logs,
        "started_at": state.started_at,
        "completed_at": completed_at,
        "predict_time": None,
        "reason": reason,
    }
    if state.boot_time is not None:
        data["boot_time"] = state.boot_time
    return [_event(state, "canceled", data, metadata)]


def decide_remove_data(state: Prediction, *, removed_at: str, metadata: EventMetadata) -> list[Envelope]:
    """Remove an ended API prediction's input, output and logs; web predictions and repeats change nothing."""
    if not state.is_terminal or state.data_removed or state.source == "web":
        return []
    return [_event(state, "data_removed", {"removed_at": removed_at}, metadata)]
