"""What the scheduler's handlers may touch."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class VersionInfo:
    id: str
    model: str
    hardware: str
    package_key: str
    predictor_ref: str
    # From the version's OpenAPI schema: iterator output (its predictions stream) and `cog.Secret` inputs.
    streams: bool = False
    secret_inputs: frozenset[str] = field(default_factory=frozenset)


class RegistryClient(Protocol):
    async def get_version(self, version_id: str) -> VersionInfo:
        """Raises services.scheduler.domain.errors.VersionNotFound."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class RunnerControl(Protocol):
    async def request_cancel(self, prediction_id: str) -> None: ...


class PredictionData(Protocol):
    async def remove(self, prediction_id: str, *, input: dict[str, Any], output: Any, account: str,
                     spilled: list[str]) -> None:
        """Delete the bytes a prediction left outside the event log: output files, its stream, uploaded inputs,
        and last the values its events and reports stored by reference (``spilled``, keys of `cogwheel-spilled`).

        Idempotent: what is already gone is skipped.
        """
        ...


@dataclass(frozen=True)
class NodeReport:
    """A runner node as its latest heartbeat describes it."""

    runner_id: str
    # Subject token on which the node takes commands.
    key: str
    label: str
    slots: int
    gpu_memory_mib: int
    updated_at: datetime
    draining: bool = False
    # Instance id → {"busy", "last_used", "state", "version"} as the node sees them.
    instances: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeploymentInfo:
    name: str  # owner/name
    model_version: str
    hardware: str
    min_instances: int
    max_instances: int


class NodeDirectory(Protocol):
    async def live_nodes(self) -> list[NodeReport]: ...


class NodeCommands(Protocol):
    async def load(self, node_key: str, command: dict[str, Any]) -> bool:
        """Ask the node to load an instance; False when it did not answer (the command is sent again)."""
        ...

    async def unload(self, node_key: str, instance_id: str, reason: str) -> bool: ...


class JobQueues(Protocol):
    async def ensure(self, label: str, queue: str) -> tuple[str, str]:
        """The queue's job subject and durable consumer, created when missing."""
        ...

    async def discard(self, label: str, queue: str, prediction_ids: set[str]) -> int:
        """Remove the jobs of these (ended) predictions from the queue; returns how many were removed."""
        ...


class DeploymentDirectory(Protocol):
    async def deployments(self) -> list[DeploymentInfo]: ...
