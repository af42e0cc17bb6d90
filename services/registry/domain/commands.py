"""Registry commands: what callers ask for, before any validation against state."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EnsureAccount(Command):
    username: str
    type: str = "user"
    name: str = ""
    admin: bool = False


class AddMember(Command):
    organization: str
    member: str


class RemoveMember(Command):
    organization: str
    member: str


class CreateToken(Command):
    username: str
    name: str = ""


class TokenCommand(Command):
    """Acts on one token; `username` may be left empty and is then looked up from the token id."""

    token_id: str
    username: str = ""


class DisableToken(TokenCommand):
    pass


class EnableToken(TokenCommand):
    pass


class RevokeToken(TokenCommand):
    pass


class CreateModel(Command):
    owner: str
    name: str
    visibility: str = "public"
    hardware: str = "cpu"
    description: str = ""


class CreateVersion(Command):
    owner: str
    name: str
    version_id: str
    openapi_schema: dict[str, Any] = Field(default_factory=dict)
    cog_version: str = ""
    package_key: str = ""
    predictor_ref: str = ""
