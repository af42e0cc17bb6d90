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
    github_url: str = ""
    paper_url: str = ""
    license_url: str = ""
    cover_image_url: str = ""


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


class UpdateModel(Command):
    owner: str
    name: str
    # Only the given fields change; keys are the names in events.MODEL_DETAIL_FIELDS.
    changes: dict[str, str]


class DeleteModel(Command):
    owner: str
    name: str


class DeleteVersion(Command):
    owner: str
    name: str
    version_id: str


class CreateFile(Command):
    id: str
    owner: str
    name: str
    content_type: str
    size: int
    sha256: str
    md5: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)


class DeleteFile(Command):
    id: str


class PutCollection(Command):
    slug: str
    name: str
    description: str = ""
    full_description: str = ""
    models: list[str] = Field(default_factory=list)


class CreateDeployment(Command):
    owner: str
    name: str
    # "owner/name" of the model to run.
    model: str
    version: str
    hardware: str
    min_instances: int
    max_instances: int
    # Username of the account making the release.
    created_by: str


class UpdateDeployment(Command):
    """Only the given (not None) fields change; any change is a new release."""

    owner: str
    name: str
    created_by: str
    version: str | None = None
    hardware: str | None = None
    min_instances: int | None = None
    max_instances: int | None = None


class DeleteDeployment(Command):
    owner: str
    name: str
