"""Model instance aggregate: one loaded worker of one version, serving one queue, on one node.

requested → placed → booting → ready → stopping → stopped, or → failed from any live state.

The scheduler decides (`services.scheduler.domain.placement`), records the decision as an event here, then
commands the node; the node's reports (booting phases, ready with its setup time, stopped, failed) become
the instance's later events. Folding every `instance-<id>` stream of the log gives the scheduler its state
back after a restart.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from libs.events import Envelope, EventMetadata, new_event

LIVE = frozenset({"requested", "placed", "booting", "ready", "stopping"})
ENDED = frozenset({"stopped", "failed"})


def new_instance_id() -> str:
    return "i-" + uuid.uuid4().hex[:16]


def stream_id(instance_id: str) -> str:
    return f"instance-{instance_id}"


@dataclass(frozen=True)
class Instance:
    id: str
    version: int = 0
    state: str = "new"
    queue: str = ""
    label: str = ""
    model_version: str = ""
    deployment: str | None = None
    node: str = ""
    requested_at: datetime | None = None
    # When the state last changed (booting, ready, ...).
    since: datetime | None = None
    ready_at: datetime | None = None
    # Booting phase the node reported last (fetching the package, building the environment, running setup()).
    phase: str = ""
    slots: int = 1
    gpu_memory_mib: int = 0
    setup_time: float | None = None
    reason: str = ""

    @property
    def live(self) -> bool:
        return self.state in LIVE

    @property
    def boot_time(self) -> float | None:
        if self.ready_at is None or self.requested_at is None:
            return None
        return max((self.ready_at - self.requested_at).total_seconds(), 0.0)


def _at(value: Any) -> datetime | None:
    if value is None:
        return None
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def evolve(state: Instance, event: Envelope) -> Instance:
    data = event.data
    kind = event.type.removeprefix("instance.")
    at = _at(data.get("at"))
    common: dict[str, Any] = {"version": event.stream_version, "since": at or state.since}
    if kind == "requested":
        return replace(
            state, **common, state="requested", queue=data["queue"], label=data["label"],
            model_version=data["model_version"], deployment=data.get("deployment"), requested_at=at,
            gpu_memory_mib=int(data.get("gpu_memory_mib") or 0),
        )
    if kind == "placed":
        return replace(state, **common, state="placed", node=data["node"])
    if kind == "booting":
        return replace(state, **common, state="booting", phase=data.get("phase") or state.phase,
                       gpu_memory_mib=int(data.get("gpu_memory_mib") or state.gpu_memory_mib))
    if kind == "ready":
        return replace(
            state, **common, state="ready", ready_at=at, slots=max(1, int(data.get("slots") or 1)),
            setup_time=data.get("setup_time"),
            gpu_memory_mib=int(data.get("gpu_memory_mib") or state.gpu_memory_mib),
        )
    if kind == "stopping":
        return replace(state, **common, state="stopping", reason=data.get("reason") or "")
    if kind in ENDED:
        # A stop the scheduler asked for keeps its reason (idle, evicted, ...); the node's says only "unloaded".
        asked = kind == "stopped" and state.state == "stopping" and state.reason
        reason = state.reason if asked else data.get("reason") or state.reason
        return replace(state, **common, state=kind, reason=reason,
                       gpu_memory_mib=int(data.get("gpu_memory_mib") or state.gpu_memory_mib))
    return replace(state, version=event.stream_version)


def load(instance_id: str, events: list[Envelope]) -> Instance:
    state = Instance(id=instance_id)
    for event in events:
        state = evolve(state, event)
    return state


def _event(instance_id: str, kind: str, at: datetime, data: dict[str, Any], metadata: EventMetadata) -> Envelope:
    return new_event(f"instance.{kind}", stream_id(instance_id),
                     {"id": instance_id, "at": at.isoformat(), **data}, metadata=metadata)


def decide_request(
    instance_id: str, *, queue: str, label: str, model_version: str, deployment: str | None, node: str,
    gpu_memory_mib: int, at: datetime, metadata: EventMetadata,
) -> list[Envelope]:
    """A new instance and where it goes: `instance.requested` then `instance.placed`."""
    requested = {"queue": queue, "label": label, "model_version": model_version, "deployment": deployment,
                 "gpu_memory_mib": gpu_memory_mib}
    return [
        _event(instance_id, "requested", at, requested, metadata),
        _event(instance_id, "placed", at, {"node": node}, metadata),
    ]


def decide_report(state: Instance, kind: str, data: dict[str, Any], *, at: datetime,
                  metadata: EventMetadata) -> list[Envelope]:
    """A node's report on the instance; late or repeated reports (an ended instance) change nothing."""
    if not state.live or kind not in {"booting", "ready", "stopped", "failed"}:
        return []
    if kind == "booting" and state.state not in {"placed", "booting"}:
        return []
    if kind == "booting" and state.state == "booting" and data.get("phase") == state.phase:
        return []
    if kind == "ready" and state.state not in {"placed", "booting"}:
        return []
    fields: dict[str, Any] = {
        key: data[key] for key in ("phase", "slots", "setup_time", "gpu_memory_mib", "reason") if key in data
    }
    return [_event(state.id, kind, at, fields, metadata)]


def decide_stop(state: Instance, *, reason: str, at: datetime, metadata: EventMetadata) -> list[Envelope]:
    """The scheduler stops the instance (idle, evicted, drained, moved to a new release)."""
    if state.state in ENDED or state.state == "stopping":
        return []
    return [_event(state.id, "stopping", at, {"reason": reason}, metadata)]


def decide_fail(state: Instance, *, reason: str, at: datetime, metadata: EventMetadata) -> list[Envelope]:
    """The scheduler gives the instance up (its node is gone, it never reported back)."""
    if state.state in ENDED:
        return []
    return [_event(state.id, "failed", at, {"reason": reason}, metadata)]


@dataclass(frozen=True)
class BootBackoff:
    failures: int
    not_before: datetime
    reason: str


def failed_boot(instance: Instance) -> bool:
    """The instance ended before it was ever ready (setup() failed, or it never reported back)."""
    return instance.state == "failed" and instance.ready_at is None


def boot_backoff(instances: Iterable[Instance], *, base: float, cap: float) -> dict[tuple[str, str], BootBackoff]:
    """For each queue and version whose latest boots failed in a row, when the next may start: the second
    failure in a row waits `base` seconds, each one after doubles it, up to `cap` (a model whose setup() always
    fails is not booted in a tight loop). One boot that reaches ready resets the count."""
    by_queue: dict[tuple[str, str], list[Instance]] = {}
    for instance in instances:
        if instance.requested_at is not None and instance.queue:
            by_queue.setdefault((instance.queue, instance.model_version), []).append(instance)
    backoff: dict[tuple[str, str], BootBackoff] = {}
    for key, tried in by_queue.items():
        tried.sort(key=lambda i: i.requested_at or datetime.min)
        failures = 0
        for instance in reversed(tried):
            if not failed_boot(instance):
                break
            failures += 1
        if failures >= 2 and tried[-1].since is not None:
            delay = min(base * 2 ** (failures - 2), cap)
            backoff[key] = BootBackoff(failures, tried[-1].since + timedelta(seconds=delay), tried[-1].reason)
    return backoff
