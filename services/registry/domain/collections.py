"""Collection aggregate: a named, ordered list of models, defined by an operator."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.registry.domain.commands import PutCollection
from services.registry.domain.errors import InvalidRequest
from services.registry.domain.events import CollectionDefined, RegistryEvent

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_MODEL_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,99}$")
MAX_MODELS = 500


def define_collection(current: CollectionDefined | None, cmd: PutCollection, now: datetime) -> list[RegistryEvent]:
    """A new definition, unless it is the same as the current one."""
    if not _SLUG.fullmatch(cmd.slug):
        raise InvalidRequest(f"invalid collection slug: {cmd.slug!r} (lower-case letters, digits and dashes)")
    if not cmd.name.strip():
        raise InvalidRequest("a collection needs a name")
    if len(cmd.models) > MAX_MODELS:
        raise InvalidRequest(f"a collection holds at most {MAX_MODELS} models")
    bad = [ref for ref in cmd.models if not _MODEL_REF.fullmatch(ref)]
    if bad:
        raise InvalidRequest(f"models must be given as owner/name, not {', '.join(map(repr, bad))}")
    models = list(dict.fromkeys(cmd.models))
    event = CollectionDefined(
        slug=cmd.slug,
        name=cmd.name.strip(),
        description=cmd.description,
        full_description=cmd.full_description,
        models=models,
        defined_at=now,
    )
    if current is not None and current.model_dump(exclude={"defined_at"}) == event.model_dump(exclude={"defined_at"}):
        return []
    return [event]


class Collection(BaseModel):
    model_config = ConfigDict(frozen=True)

    slug: str
    name: str
    description: str
    full_description: str
    models: list[str]
