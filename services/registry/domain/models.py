"""Model aggregate: a model and its immutable, content-addressed versions."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.registry.domain import names
from services.registry.domain.accounts import Account
from services.registry.domain.commands import CreateModel, CreateVersion, DeleteModel, DeleteVersion, UpdateModel
from services.registry.domain.errors import (
    AccountNotFound,
    InvalidRequest,
    ModelAlreadyExists,
    ModelHasVersions,
    ModelNotFound,
    VersionAlreadyExists,
    VersionInUse,
    VersionNotFound,
)
from services.registry.domain.events import (
    MODEL_DETAIL_FIELDS,
    ModelCreated,
    ModelDeleted,
    ModelUpdated,
    RegistryEvent,
    VersionCreated,
    VersionDeleted,
)

MAX_DESCRIPTION = 5000
MAX_README = 100_000
MAX_URL = 2000


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
    github_url: str = ""
    paper_url: str = ""
    license_url: str = ""
    cover_image_url: str = ""
    weights_url: str = ""
    readme: str = ""
    latest_version_id: str | None = None
    # Insertion order is creation order. The aggregate holds every version; read views hold the latest only.
    versions: dict[str, Version] = {}

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def latest_version(self) -> Version | None:
        return self.versions.get(self.latest_version_id) if self.latest_version_id else None


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
                github_url=event.github_url,
                paper_url=event.paper_url,
                license_url=event.license_url,
                cover_image_url=event.cover_image_url,
            )
        case VersionCreated() if state is not None:
            version = Version.model_validate(event.model_dump())
            versions = {**state.versions, version.id: version}
            return state.model_copy(update={"versions": versions, "latest_version_id": version.id})
        case ModelUpdated() if state is not None:
            return state.model_copy(update=event.changes)
        case VersionDeleted() if state is not None:
            versions = {key: value for key, value in state.versions.items() if key != event.id}
            latest = next(reversed(versions), None)
            return state.model_copy(update={"versions": versions, "latest_version_id": latest})
        case ModelDeleted():
            return None
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
    urls = {key: _url(key, getattr(cmd, key)) for key in ("github_url", "paper_url", "license_url", "cover_image_url")}
    return [
        ModelCreated(
            owner=owner.username,
            name=cmd.name,
            visibility=names.visibility(cmd.visibility),
            hardware=names.hardware(cmd.hardware),
            description=cmd.description,
            created_at=now,
            **urls,
        )
    ]


def _url(field: str, value: str) -> str:
    if value and (len(value) > MAX_URL or not value.startswith(("http://", "https://"))):
        raise InvalidRequest(f"{field} must be an http(s) URL of at most {MAX_URL} characters")
    return value


def update_model(state: Model | None, cmd: UpdateModel, now: datetime) -> list[RegistryEvent]:
    if state is None:
        raise ModelNotFound(cmd.owner, cmd.name)
    unknown = sorted(set(cmd.changes) - set(MODEL_DETAIL_FIELDS))
    if unknown:
        raise InvalidRequest(f"cannot update {', '.join(unknown)}")
    if len(cmd.changes.get("description", "")) > MAX_DESCRIPTION:
        raise InvalidRequest(f"description is longer than {MAX_DESCRIPTION} characters")
    if len(cmd.changes.get("readme", "")) > MAX_README:
        raise InvalidRequest(f"readme is longer than {MAX_README} characters")
    for key, value in cmd.changes.items():
        if key.endswith("_url"):
            _url(key, value)
    changes = {key: value for key, value in cmd.changes.items() if getattr(state, key) != value}
    if not changes:
        return []
    return [ModelUpdated(owner=state.owner, name=state.name, changes=changes, updated_at=now)]


def delete_model(state: Model | None, cmd: DeleteModel, now: datetime) -> list[RegistryEvent]:
    if state is None:
        raise ModelNotFound(cmd.owner, cmd.name)
    if state.versions:
        raise ModelHasVersions(state.owner, state.name, len(state.versions))
    return [ModelDeleted(owner=state.owner, name=state.name, deleted_at=now)]


def delete_version(
    state: Model | None, cmd: DeleteVersion, now: datetime, *, used_by: Iterable[str] = ()
) -> list[RegistryEvent]:
    """`used_by`: the deployments (`owner/name`) whose current release runs the version."""
    if state is None:
        raise ModelNotFound(cmd.owner, cmd.name)
    if cmd.version_id not in state.versions:
        raise VersionNotFound(cmd.version_id)
    deployments = sorted(used_by)
    if deployments:
        raise VersionInUse(cmd.version_id, deployments)
    return [VersionDeleted(id=cmd.version_id, owner=state.owner, name=state.name, deleted_at=now)]


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
