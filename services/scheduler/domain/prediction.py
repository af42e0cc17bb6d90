"""Prediction aggregate: starting → processing → succeeded | failed | canceled.

`decide_*` functions take the current state and return the events to record (possibly none, which makes
every transition idempotent: a duplicate or late runner report changes nothing); `evolve` folds events.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any

from libs.bus.subjects import WEBHOOK_TAG
from libs.events import Envelope, EventMetadata

# The contract's pure modules (the package also renders and restores, which needs the object store).
from libs.predictions.events import (
    ENDED_EVENT_BY_STATUS,
    PredictionCanceled,
    PredictionCreated,
    PredictionDataRemoved,
    PredictionProgressed,
    PredictionStarted,
    PredictionWaiting,
    prediction_stream_id,
)
from libs.predictions.fold import PredictionState, fold, fold_all
from libs.predictions.status import TERMINAL_STATUSES, PredictionStatus

# The scheduler's state of a prediction is the common one (`libs.predictions.fold`): the API, the webhooks
# and the scheduler see the same prediction.
Prediction = PredictionState


def new_prediction_id() -> str:
    """26 lowercase base32 characters, the shape of Replicate's ids."""
    return base64.b32encode(secrets.token_bytes(16)).decode().lower().rstrip("=")


def stream_id(prediction_id: str) -> str:
    return prediction_stream_id(prediction_id)


def _routed(webhook: str | None, metadata: EventMetadata) -> EventMetadata:
    """Events of a prediction with a webhook are tagged for the webhook dispatcher, whose consumer takes only
    those (libs.bus.subjects): a prediction without one never reaches it."""
    return metadata.model_copy(update={"subject_tag": WEBHOOK_TAG}) if webhook else metadata


def _billing_facts(state: Prediction) -> dict[str, Any]:
    """What a usage record needs, carried by the end so billing reads no other event of the prediction."""
    return {"account": state.account, "model": state.model, "version": state.version_id, "hardware": state.hardware}


def evolve(state: Prediction, event: Envelope) -> Prediction:
    return fold(state, event)


def load(prediction_id: str, events: list[Envelope]) -> Prediction:
    return fold_all(prediction_id, events)


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
    # Deadline, deployment and stream token are only present when they apply.
    optional: dict[str, Any] = {}
    if deadline is not None:
        optional["deadline"] = deadline.isoformat()
    if deployment is not None:
        optional["deployment"] = deployment
    if stream:
        optional["stream_token"] = secrets.token_urlsafe(24)
    created = PredictionCreated(
        id=prediction_id, model=model, version=version_id, hardware=hardware, input=input, account=account,
        created_at=created_at.isoformat(), webhook=webhook, webhook_events_filter=webhook_events_filter,
        source=source, stream=stream, **optional,
    )
    return [created.to_envelope(_routed(webhook, metadata))]


def decide_start(
    state: Prediction, *, started_at: str, runner_id: str, metadata: EventMetadata,
    instance_id: str | None = None, boot_time: float | None = None,
) -> list[Envelope]:
    """``boot_time``: seconds the prediction waited for its instance to boot (absent when one was ready)."""
    if state.status != PredictionStatus.STARTING:
        return []
    optional: dict[str, Any] = {}
    if instance_id:
        optional["instance_id"] = instance_id
    if boot_time is not None:
        optional["boot_time"] = boot_time
    started = PredictionStarted(id=state.id, started_at=started_at, runner_id=runner_id, **optional)
    return [started.to_envelope(_routed(state.webhook, metadata))]


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
    if state.status != PredictionStatus.STARTING or not logs:
        return []
    return [PredictionWaiting(id=state.id, logs=logs).to_envelope(_routed(state.webhook, metadata))]


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
    if state.is_terminal or status not in TERMINAL_STATUSES:
        return []
    events: list[Envelope] = []
    if state.status == PredictionStatus.STARTING and started_at is not None:
        events += decide_start(state, started_at=started_at, runner_id=runner_id, metadata=metadata)
    if state.waiting_logs and not logs.startswith(state.waiting_logs):
        logs = state.waiting_logs + logs
    optional: dict[str, Any] = {}
    if state.boot_time is not None:
        # The end carries every field a finished prediction shows: read models may skip to it.
        optional["boot_time"] = state.boot_time
    ended = ENDED_EVENT_BY_STATUS[status](
        id=state.id, output=output, logs=logs, error=error, started_at=started_at or state.started_at,
        completed_at=completed_at, predict_time=predict_time, **optional, **_billing_facts(state),
    )
    return events + [ended.to_envelope(_routed(state.webhook, metadata))]


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
    if state.status == PredictionStatus.STARTING or seq != state.progress_seq + 1:
        raise ProgressOutOfOrder(f"progress {seq} of {state.id} after {state.progress_seq}")
    progressed = PredictionProgressed(id=state.id, seq=seq, output_items=output_items, logs=logs)
    return [progressed.to_envelope(_routed(state.webhook, metadata))]


def decide_cancel(
    state: Prediction, *, completed_at: str, metadata: EventMetadata, reason: str = "canceled"
) -> list[Envelope]:
    """Cancel a prediction that has not ended; ``reason`` is `canceled` (asked for) or `deadline` (Cancel-After)."""
    if state.is_terminal:
        return []
    optional: dict[str, Any] = {}
    if state.boot_time is not None:
        optional["boot_time"] = state.boot_time
    canceled = PredictionCanceled(
        id=state.id, output=state.output, logs=state.logs, started_at=state.started_at, completed_at=completed_at,
        predict_time=None, reason=reason, **optional, **_billing_facts(state),
    )
    return [canceled.to_envelope(_routed(state.webhook, metadata))]


def decide_remove_data(state: Prediction, *, removed_at: str, metadata: EventMetadata) -> list[Envelope]:
    """Remove an ended API prediction's input, output and logs; web predictions and repeats change nothing."""
    if not state.is_terminal or state.data_removed or state.source == "web":
        return []
    return [PredictionDataRemoved(id=state.id, removed_at=removed_at).to_envelope(_routed(state.webhook, metadata))]
