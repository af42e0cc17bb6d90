"""Deployment aggregate: a named, account-owned endpoint that runs one model version on chosen hardware.

Every create and update is a release (numbered from 1); the current release says which version runs, on
which hardware SKU, with how many instances at least and at most.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.registry.domain import names
from services.registry.domain.accounts import Account
from services.registry.domain.commands import CreateDeployment, DeleteDeployment, UpdateDeployment
from services.registry.domain.errors import (
    AccountNotFound,
    DeploymentAlreadyExists,
    DeploymentNotFound,
    InvalidRequest,
    ModelNotFound,
    VersionNotFound,
)
from services.registry.domain.events import DeploymentCreated, DeploymentDeleted, DeploymentReleased, RegistryEvent
from services.registry.domain.models import Model

# Replicate's bounds for deployments.create / update.
MAX_MIN_INSTANCES = 5
MAX_MAX_INSTANCES = 20


class Release(BaseModel):
    model_config = ConfigDict(frozen=True)

    number: int
    model: str
    version: str
    hardware: str
    min_instances: int
    max_instances: int
    created_by: str
    created_at: datetime


class Deployment(BaseModel):
    model_config = ConfigDict(frozen=True)

    owner: str
    name: str
    created_at: datetime
    current_release: Release

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def _release(event: DeploymentReleased) -> Release:
    return Release.model_validate(event.model_dump(exclude={"owner", "name"}))


def evolve(state: Deployment | None, event: RegistryEvent) -> Deployment | None:
    match event:
        case DeploymentCreated():
            return Deployment(owner=event.owner, name=event.name, created_at=event.created_at,
                              current_release=_release(event))
        case DeploymentReleased() if state is not None:
            return state.model_copy(update={"current_release": _release(event)})
        case DeploymentDeleted():
            return None
    return state


def replay(events: Iterable[RegistryEvent]) -> Deployment | None:
    state: Deployment | None = None
    for event in events:
        state = evolve(state, event)
    return state


def exists_as_name(owner: str, name: str) -> bool:
    """Whether `owner/name` could name a deployment; one that cannot is simply not found (and never queried)."""
    try:
        names.username(owner)
        names.deployment_name(name)
    except InvalidRequest:
        return False
    return True


def split_model_ref(ref: str) -> tuple[str, str]:
    owner, slash, name = ref.partition("/")
    if not slash or not owner or not name:
        raise InvalidRequest(f"model must be given as owner/name, not {ref!r}")
    return names.username(owner), names.model_name(name)


def check_hardware(hardware: str, known: Collection[str]) -> str:
    if hardware not in known:
        raise InvalidRequest(f"hardware must be one of {', '.join(known)}, not {hardware!r}")
    return hardware


def check_instances(min_instances: int, max_instances: int) -> None:
    """Each message names the offending field; the gateway passes it on in its 422."""
    if not 0 <= min_instances <= MAX_MIN_INSTANCES:
        raise InvalidRequest(f"min_instances must be between 0 and {MAX_MIN_INSTANCES}, not {min_instances}")
    if not 1 <= max_instances <= MAX_MAX_INSTANCES:
        raise InvalidRequest(f"max_instances must be between 1 and {MAX_MAX_INSTANCES}, not {max_instances}")
    if min_instances > max_instances:
        raise InvalidRequest(
            f"min_instances ({min_instances}) must not be greater than max_instances ({max_instances})"
        )


def _check_version(model: Model | None, model_ref: str, version: str) -> None:
    if model is None:
        owner, name = split_model_ref(model_ref)
        raise ModelNotFound(owner, name)
    if version not in model.versions:
        raise VersionNotFound(version)


def create_deployment(
    state: Deployment | None,
    cmd: CreateDeployment,
    *,
    owner: Account | None,
    model: Model | None,
    hardware: Collection[str],
    now: datetime,
) -> list[RegistryEvent]:
    """`model` is the aggregate named by `cmd.model` (None when it does not exist); `hardware` the known SKUs."""
    names.username(cmd.owner)
    names.deployment_name(cmd.name)
    split_model_ref(cmd.model)
    if owner is None:
        raise AccountNotFound(cmd.owner)
    if state is not None:
        raise DeploymentAlreadyExists(cmd.owner, cmd.name)
    check_hardware(cmd.hardware, hardware)
    check_instances(cmd.min_instances, cmd.max_instances)
    _check_version(model, cmd.model, cmd.version)
    return [
        DeploymentCreated(
            owner=owner.username,
            name=cmd.name,
            number=1,
            model=cmd.model,
            version=cmd.version,
            hardware=cmd.hardware,
            min_instances=cmd.min_instances,
            max_instances=cmd.max_instances,
            created_by=cmd.created_by,
            created_at=now,
        )
    ]


def update_deployment(
    state: Deployment | None,
    cmd: UpdateDeployment,
    *,
    model: Model | None,
    hardware: Collection[str],
    now: datetime,
) -> list[RegistryEvent]:
    """A new release with the given fields changed; `model` is the aggregate of the current release's model."""
    if state is None:
        raise DeploymentNotFound(cmd.owner, cmd.name)
    changes = cmd.model_dump(include={"version", "hardware", "min_instances", "max_instances"}, exclude_none=True)
    if not changes:
        raise InvalidRequest("give at least one of version, hardware, min_instances, max_instances")
    current = state.current_release
    merged = current.model_copy(update=changes)
    check_hardware(merged.hardware, hardware)
    check_instances(merged.min_instances, merged.max_instances)
    if "version" in changes:
        _check_version(model, current.model, merged.version)
    return [
        DeploymentReleased(
            owner=state.owner,
            name=state.name,
            number=current.number + 1,
            model=current.model,
            version=merged.version,
            hardware=merged.hardware,
            min_instances=merged.min_instances,
            max_instances=merged.max_instances,
            created_by=cmd.created_by,
            created_at=now,
        )
    ]


def delete_deployment(state: Deployment | None, cmd: DeleteDeployment, now: datetime) -> list[RegistryEvent]:
    if state is None:
        raise DeploymentNotFound(cmd.owner, cmd.name)
    return [DeploymentDeleted(owner=state.owner, name=state.name, deleted_at=now)]
