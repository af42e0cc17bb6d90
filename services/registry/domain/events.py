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

    @property
    def stream_id(self) -> str:
        return account_stream(self.username)


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


class ModelCreated(RegistryEvent):
    TYPE: ClassVar[str] = "model.created"

    owner: str
    name: str
    visibility: str
    hardware: str
    description: str
    created_at: datetime

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


EVENT_TYPES: dict[str, type[RegistryEvent]] = {
    cls.TYPE: cls for cls in (AccountCreated, TokenCreated, TokenDisabled, ModelCreated, VersionCreated)
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
