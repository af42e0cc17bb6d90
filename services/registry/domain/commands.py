"""Registry commands: what callers ask for, before any validation against state."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EnsureAccount(Command):
    username: str
    type: str = "user"
    name: str = ""


class CreateToken(Command):
    username: str
    name: str = ""


class DisableToken(Command):
    username: str
    token_id: str


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
    gpu: bool = False
    concurrency_max: int = 1
