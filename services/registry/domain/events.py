"""Registry events: stable type strings, their payloads, and the streams they belong to."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from libs.events import Envelope, EventMetadata


def account_stream(username: str) -> str:
    return f"account-{username}"


def model_stream(owner: str, name: str) -> str:
    return f"model-{owner}/{name}"


class RegistryEvent(BaseModel):
    """A fact recorded by the registry; `TYPE` is the stable wire name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    TYPE: ClassVar[str]

    @property
    def stream_id(self) -> str:
        raise NotImplementedError


class AccountCreated(RegistryEvent):
    TYPE: ClassVar[str] = "account.created"

    username: str
    type: str
    name: str
    created_at: datetime
    # Administrators may use the admin HTTP API; absent (False) in events recorded before it existed.
    admin: bool = False

    @property
    def stream_id(self) -> str:
        return account_stream(self.username)


class MembershipAdded(RegistryEvent):
    """A user joined an organization; recorded on the organization's stream, which owns its member list."""

    TYPE: ClassVar[str] = "membership.added"

    organization: str
    member: str
    added_at: datetime

    @property
    def stream_id(self) -> str:
        return account_stream(self.organization)


class MembershipRemoved(RegistryEvent):
    TYPE: ClassVar[str] = "membership.removed"

    organization: str
    member: str
    removed_at: datetime

    @property
    def stream_id(self) -> str:
        return account_stream(self.organization)


class TokenCreated(RegistryEvent):
    """Holds only the sha256 of the secret: the log must never be able to leak a usable token."""

    TYPE: ClassVar[str] = "token.created"

    username: str
    token_id: str
    name: str
    token_hash: str
    created_at: datetime

    @property
    def stream_id(self) -> str:
        return account_stream(self.username)


class TokenDisabled(RegistryEvent):
    TYPE: ClassVar[str] = "token.disabled"

    username: str
    token_id: str
    disabled_at: datetime

    @property
    def stream_id(self) -> str:
        return account_stream(self.username)


class TokenEnabled(RegistryEvent):
    TYPE: ClassVar[str] = "token.enabled"

    username: str
    token_id: str
    enabled_at: datetime

    @property
    def stream_id(self) -> str:
        return account_stream(self.username)


class TokenRevoked(RegistryEvent):
    """Final: a revoked token never authenticates again, unlike a disabled one."""

    TYPE: ClassVar[str] = "token.revoked"

    username: str
    token_id: str
    revoked_at: datetime

    @property
    def stream_id(self) -> str:
        return account_stream(self.username)


class ModelCreated(RegistryEvent):
    TYPE: ClassVar[str] = "model.created"

    owner: str
    name: str
    visibility: str
    hardware: str
    description: str
    created_at: datetime
    # Added later: events recorded before them read as empty.
    github_url: str = ""
    paper_url: str = ""
    license_url: str = ""
    cover_image_url: str = ""

    @property
    def stream_id(self) -> str:
        return model_stream(self.owner, self.name)


class VersionCreated(RegistryEvent):
    TYPE: ClassVar[str] = "version.created"

    id: str
    owner: str
    name: str
    cog_version: str
    openapi_schema: dict[str, Any]
    package_key: str
    predictor_ref: str
    hardware: str
    created_at: datetime
    # Absent from events recorded before it existed.
    concurrency_max: int = 1

    @property
    def stream_id(self) -> str:
        return model_stream(self.owner, self.name)


def file_stream(file_id: str) -> str:
    return f"file-{file_id}"


def collection_stream(slug: str) -> str:
    return f"collection-{slug}"


def deployment_stream(owner: str, name: str) -> str:
    return f"deployment-{owner}/{name}"


MODEL_DETAIL_FIELDS = (
    "description", "readme", "github_url", "paper_url", "weights_url", "license_url", "cover_image_url"
)


class ModelUpdated(RegistryEvent):
    """`changes` holds only the fields that were given, keyed by a name in MODEL_DETAIL_FIELDS."""

    TYPE: ClassVar[str] = "model.updated"

    owner: str
    name: str
    changes: dict[str, str]
    updated_at: datetime

    @property
    def stream_id(self) -> str:
        return model_stream(self.owner, self.name)


class ModelDeleted(RegistryEvent):
    TYPE: ClassVar[str] = "model.deleted"

    owner: str
    name: str
    deleted_at: datetime

    @property
    def stream_id(self) -> str:
        return model_stream(self.owner, self.name)


class VersionDeleted(RegistryEvent):
    TYPE: ClassVar[str] = "version.deleted"

    id: str
    owner: str
    name: str
    deleted_at: datetime

    @property
    def stream_id(self) -> str:
        return model_stream(self.owner, self.name)


class FileCreated(RegistryEvent):
    """The record of an upload; the bytes were stored in the files bucket under `id` before this was recorded."""

    TYPE: ClassVar[str] = "file.created"

    id: str
    owner: str
    name: str
    content_type: str
    size: int
    sha256: str
    md5: str
    metadata: dict[str, Any]
    created_at: datetime
    expires_at: datetime

    @property
    def stream_id(self) -> str:
        return file_stream(self.id)


class FileDeleted(RegistryEvent):
    TYPE: ClassVar[str] = "file.deleted"

    id: str
    owner: str
    deleted_at: datetime

    @property
    def stream_id(self) -> str:
        return file_stream(self.id)


class CollectionDefined(RegistryEvent):
    """A collection's whole definition; a later one replaces it."""

    TYPE: ClassVar[str] = "collection.defined"

    slug: str
    name: str
    description: str
    full_description: str
    models: list[str]
    defined_at: datetime

    @property
    def stream_id(self) -> str:
        return collection_stream(self.slug)


class DeploymentReleased(RegistryEvent):
    """A release of a deployment: the version it runs and its configuration; numbered from 1 per deployment."""

    TYPE: ClassVar[str] = "deployment.released"

    owner: str
    name: str
    number: int
    model: str
    version: str
    hardware: str
    min_instances: int
    max_instances: int
    # Username of the account whose token made the release.
    created_by: str
    created_at: datetime

    @property
    def stream_id(self) -> str:
        return deployment_stream(self.owner, self.name)


class DeploymentCreated(DeploymentReleased):
    """The deployment and its first release (number 1), in one event."""

    TYPE: ClassVar[str] = "deployment.created"


class DeploymentDeleted(RegistryEvent):
    """The name is free again afterwards; a deployment created under it starts again at release 1."""

    TYPE: ClassVar[str] = "deployment.deleted"

    owner: str
    name: str
    deleted_at: datetime

    @property
    def stream_id(self) -> str:
        return deployment_stream(self.owner, self.name)


EVENT_TYPES: dict[str, type[RegistryEvent]] = {
    cls.TYPE: cls
    for cls in (
        AccountCreated,
        MembershipAdded,
        MembershipRemoved,
        TokenCreated,
        TokenDisabled,
        TokenEnabled,
        TokenRevoked,
        ModelCreated,
        VersionCreated,
        ModelUpdated,
        ModelDeleted,
        VersionDeleted,
        FileCreated,
        FileDeleted,
        CollectionDefined,
        DeploymentCreated,
        DeploymentReleased,
        DeploymentDeleted,
    )
}


def to_envelope(event: RegistryEvent, metadata: EventMetadata | None = None) -> Envelope:
    return Envelope(
        type=event.TYPE,
        stream_id=event.stream_id,
        data=event.model_dump(mode="json"),
        metadata=metadata or EventMetadata(),
    )


def from_envelope(envelope: Envelope) -> RegistryEvent:
    cls = EVENT_TYPES.get(envelope.type)
    if cls is None:
        raise ValueError(f"not a registry event type: {envelope.type!r}")
    return cls.model_validate(envelope.data)
