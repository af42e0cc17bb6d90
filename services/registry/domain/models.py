"""Model aggregate: a model and its immutable, content-addressed versions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.registry.domain import names
from services.registry.domain.accounts import Account
from services.registry.domain.commands import CreateModel, CreateVersion
from services.registry.domain.errors import (
    AccountNotFound,
    InvalidRequest,
    ModelAlreadyExists,
    ModelNotFound,
    VersionAlreadyExists,
)
from services.registry.domain.events import ModelCreated, RegistryEvent, VersionCreated

MAX_DESCRIPTION = 5000


class Version(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    owner: str
    name: str
    created_at: datetime
    cog_version: str
    openapi_schema: dict[str, Any]
    package_key: str
    predictor_ref: str
    hardware: str
    concurrency_max: int = 1


class Model(BaseModel):
    model_config = ConfigDict(frozen=True)

    owner: str
    name: str
    visibility: str
    hardware: str
    description: str
    created_at: datetime
    latest_version_id: str | None = None
    # Insertion order is creation order; only the aggregate needs the full list.
    versions: dict[str, Version] = {}

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


def evolve(state: Model | None, event: RegistryEvent) -> Model | None:
    match event:
        case ModelCreated():
            return Model(
                owner=event.owner,
                name=event.name,
                visibility=event.visibility,
                hardware=event.hardware,
                description=event.description,
                created_at=event.created_at,
            )
        case VersionCreated() if state is not None:
            version = Version.model_validate(event.model_dump())
            versions = {**state.versions, version.id: version}
            return state.model_copy(update={"versions": versions, "latest_version_id": version.id})
    return state


def replay(events: Iterable[RegistryEvent]) -> Model | None:
    state: Model | None = None
    for event in events:
        state = evolve(state, event)
    return state


def create_model(state: Model | None, cmd: CreateModel, *, owner: Account | None, now: datetime) -> list[RegistryEvent]:
    names.username(cmd.owner)
    names.model_name(cmd.name)
    if owner is None:
        raise AccountNotFound(cmd.owner)
    if state is not None:
        raise ModelAlreadyExists(cmd.owner, cmd.name)
    if len(cmd.description) > MAX_DESCRIPTION:
        raise InvalidRequest(f"description is longer than {MAX_DESCRIPTION} characters")
    return [
        ModelCreated(
            owner=owner.username,
            name=cmd.name,
            visibility=names.visibility(cmd.visibility),
            hardware=names.hardware(cmd.hardware),
            description=cmd.description,
            created_at=now,
        )
    ]


def create_version(
    state: Model | None, cmd: CreateVersion, *, claimed_by: str | None, now: datetime
) -> list[RegistryEvent]:
    """Pushing the same content twice is a no-op; `claimed_by` is the model that already owns the id, if any."""
    if state is None:
        raise ModelNotFound(cmd.owner, cmd.name)
    version_id = names.version_id(cmd.version_id)
    if version_id in state.versions:
        return []
    if claimed_by is not None and claimed_by != state.full_name:
        raise VersionAlreadyExists(version_id, claimed_by)
    return [
        VersionCreated(
            id=version_id,
            owner=state.owner,
            name=state.name,
            cog_version=cmd.cog_version,
            openapi_schema=cmd.openapi_schema,
            package_key=cmd.package_key or version_id,
            predictor_ref=cmd.predictor_ref,
            hardware=names.version_hardware(state.hardware, cmd.gpu),
            created_at=now,
            concurrency_max=names.concurrency(cmd.concurrency_max),
        )
    ]
