"""HTTP request bodies, as Replicate's OpenAPI defines them (unknown fields are refused)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

WebhookEvent = Literal["start", "output", "logs", "completed"]


class PredictionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: dict[str, Any]
    webhook: str | None = None
    webhook_events_filter: list[WebhookEvent] | None = None
    # Accepted for the official clients: `stream` is sent by replicate.stream(), `webhook_completed` is legacy.
    stream: bool | None = None
    webhook_completed: str | None = None


class VersionPredictionRequest(PredictionRequest):
    version: str = Field(min_length=1)


ModelVisibility = Literal["public", "private"]


class ModelCreateRequest(BaseModel):
    """`POST /v1/models`."""

    model_config = ConfigDict(extra="forbid")

    owner: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=100)
    visibility: ModelVisibility
    hardware: str = Field(min_length=1, max_length=64)
    description: str | None = Field(default=None, max_length=5000)
    github_url: str | None = None
    paper_url: str | None = None
    license_url: str | None = None
    cover_image_url: str | None = None


class ModelUpdateRequest(BaseModel):
    """`PATCH /v1/models/{owner}/{name}`: only the given fields change."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = None
    readme: str | None = None
    github_url: str | None = None
    paper_url: str | None = None
    weights_url: str | None = None
    license_url: str | None = None


# Response bodies, declared so /openapi.json describes what is served (routes return them as JSON as-is).


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class PredictionUrls(_Open):
    get: str
    cancel: str
    web: str
    stream: str | None = None


class Prediction(_Open):
    id: str
    model: str
    version: str
    input: dict[str, Any]
    output: Any = None
    logs: str
    error: str | None
    status: Literal["starting", "processing", "succeeded", "failed", "canceled", "aborted"]
    source: Literal["api", "web"]
    data_removed: bool
    created_at: str
    started_at: str | None = None
    completed_at: str | None = None
    urls: PredictionUrls
    metrics: dict[str, float]


class Version(BaseModel):
    id: str
    created_at: str
    cog_version: str
    openapi_schema: dict[str, Any]


class Model(BaseModel):
    url: str
    owner: str
    name: str
    description: str | None
    visibility: ModelVisibility
    github_url: str | None
    paper_url: str | None
    license_url: str | None
    run_count: int
    cover_image_url: str | None
    default_example: Prediction | None
    latest_version: Version | None
    is_official: bool


class FileUrls(BaseModel):
    get: str
    download: str | None = None


class File(BaseModel):
    id: str
    name: str
    content_type: str
    size: int
    etag: str
    checksums: dict[str, str]
    metadata: dict[str, Any]
    created_at: str
    expires_at: str
    urls: FileUrls


class CollectionSummary(BaseModel):
    name: str
    slug: str
    description: str


class Collection(CollectionSummary):
    full_description: str | None
    models: list[Model]


class _Page(BaseModel):
    next: str | None
    previous: str | None


class PredictionPage(_Page):
    results: list[Prediction]


class ModelPage(_Page):
    results: list[Model]


class VersionPage(_Page):
    results: list[Version]


class FilePage(_Page):
    results: list[File]


class CollectionPage(_Page):
    results: list[CollectionSummary]


class SearchModelMetadata(BaseModel):
    generated_description: str | None
    tags: list[str]
    score: float | None


class SearchModel(BaseModel):
    model: Model
    metadata: SearchModelMetadata


class SearchCollection(CollectionSummary):
    models: list[str]


class SearchPage(BaseModel):
    name: str
    href: str


class SearchResults(BaseModel):
    query: str
    models: list[SearchModel]
    collections: list[SearchCollection]
    pages: list[SearchPage]


class Problem(_Open):
    title: str
    detail: str
    status: int


class AccountBody(BaseModel):
    type: Literal["user", "organization"]
    username: str
    name: str
    github_url: str | None = None
    avatar_url: str | None = None


class Hardware(BaseModel):
    sku: str
    name: str


# As the registry names them: deployment names like model names (lower case), `owner/name` model references.
DEPLOYMENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"
MODEL_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/[a-z0-9][a-z0-9_.-]{0,99}$"
VERSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"


class DeploymentCreateRequest(BaseModel):
    """`POST /v1/deployments`; the bounds are Replicate's (and max_instances is at least 1)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DEPLOYMENT_NAME_PATTERN)
    model: str = Field(pattern=MODEL_REF_PATTERN)
    version: str = Field(pattern=VERSION_ID_PATTERN)
    hardware: str = Field(min_length=1, max_length=64)
    min_instances: int = Field(ge=0, le=5)
    max_instances: int = Field(ge=1, le=20)


class DeploymentUpdateRequest(BaseModel):
    """`PATCH /v1/deployments/{owner}/{name}`: the given fields change, in a new release."""

    model_config = ConfigDict(extra="forbid")

    version: str | None = Field(default=None, pattern=VERSION_ID_PATTERN)
    hardware: str | None = Field(default=None, min_length=1, max_length=64)
    min_instances: int | None = Field(default=None, ge=0, le=5)
    max_instances: int | None = Field(default=None, ge=1, le=20)


class DeploymentConfiguration(BaseModel):
    hardware: str
    min_instances: int
    max_instances: int


class DeploymentRelease(BaseModel):
    number: int
    model: str
    version: str
    created_at: str
    created_by: AccountBody
    configuration: DeploymentConfiguration


class Deployment(BaseModel):
    owner: str
    name: str
    current_release: DeploymentRelease


class DeploymentPage(_Page):
    results: list[Deployment]
