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
    async def remove(self, prediction_id: str, *, input: dict[str, Any], output: Any, account: str) -> None:
        """Delete the bytes a prediction left outside the event log: output files, its stream, uploaded inputs.

        Idempotent: what is already gone is skipped.
        """
        ...
