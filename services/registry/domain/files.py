"""File aggregate: the record of one upload. Its bytes live in the files bucket, written by the gateway."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.registry.domain import names
from services.registry.domain.commands import CreateFile, DeleteFile
from services.registry.domain.errors import FileNotFound, InvalidRequest
from services.registry.domain.events import FileCreated, FileDeleted, RegistryEvent

_FILE_ID = re.compile(r"^[a-z0-9]{16,64}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_NAME_BYTES = 255
MAX_METADATA_BYTES = 64 * 1024


class File(BaseModel):
    model_config = ConfigDict(frozen=True)

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


def evolve(state: File | None, event: RegistryEvent) -> File | None:
    match event:
        case FileCreated():
            return File.model_validate(event.model_dump())
        case FileDeleted():
            return None
    return state


def replay(events: Iterable[RegistryEvent]) -> File | None:
    state: File | None = None
    for event in events:
        state = evolve(state, event)
    return state


def create_file(
    state: File | None, cmd: CreateFile, *, existed: bool, now: datetime, ttl: timedelta
) -> list[RegistryEvent]:
    """`existed`: the stream has events already; ids are never reused, even after deletion."""
    if not _FILE_ID.fullmatch(cmd.id):
        raise InvalidRequest(f"invalid file id: {cmd.id!r}")
    if state is not None or existed:
        raise InvalidRequest(f"file id {cmd.id} is already taken")
    names.username(cmd.owner)
    if not cmd.name or len(cmd.name.encode()) > MAX_NAME_BYTES:
        raise InvalidRequest(f"filename must be 1 to {MAX_NAME_BYTES} bytes")
    if cmd.size < 0 or not _SHA256.fullmatch(cmd.sha256):
        raise InvalidRequest("size and sha256 must describe the stored bytes")
    if len(repr(cmd.metadata)) > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata is larger than {MAX_METADATA_BYTES} bytes")
    return [
        FileCreated(
            id=cmd.id,
            owner=cmd.owner,
            name=cmd.name,
            content_type=cmd.content_type or "application/octet-stream",
            size=cmd.size,
            sha256=cmd.sha256,
            md5=cmd.md5,
            metadata=cmd.metadata,
            created_at=now,
            expires_at=now + ttl,
        )
    ]


def delete_file(state: File | None, cmd: DeleteFile, now: datetime) -> list[RegistryEvent]:
    if state is None:
        raise FileNotFound(cmd.id)
    return [FileDeleted(id=state.id, owner=state.owner, deleted_at=now)]
