# DO NOT EDIT. Regenerate with `make proto` (scripts/gen_proto.py) from protos/.
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Account(_message.Message):
    __slots__ = ("username", "type", "name", "created_at", "admin", "members", "organizations")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    ORGANIZATIONS_FIELD_NUMBER: _ClassVar[int]
    username: str
    type: str
    name: str
    created_at: str
    admin: bool
    members: _containers.RepeatedScalarFieldContainer[str]
    organizations: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, username: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ..., admin: _Optional[bool] = ..., members: _Optional[_Iterable[str]] = ..., organizations: _Optional[_Iterable[str]] = ...) -> None: ...

class EnsureAccountRequest(_message.Message):
    __slots__ = ("username", "type", "name", "admin")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    username: str
    type: str
    name: str
    admin: bool
    def __init__(self, username: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., admin: _Optional[bool] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("username", "name")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    name: str
    def __init__(self, username: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("token", "token_id", "info")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    token: str
    token_id: str
    info: TokenInfo
    def __init__(self, token: _Optional[str] = ..., token_id: _Optional[str] = ..., info: _Optional[_Union[TokenInfo, _Mapping]] = ...) -> None: ...

class AuthenticateTokenRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class AuthenticateTokenResponse(_message.Message):
    __slots__ = ("account", "token_id")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    account: Account
    token_id: str
    def __init__(self, account: _Optional[_Union[Account, _Mapping]] = ..., token_id: _Optional[str] = ...) -> None: ...

class Model(_message.Message):
    __slots__ = ("owner", "name", "visibility", "hardware", "description", "created_at", "latest_version_id", "github_url", "paper_url", "license_url", "cover_image_url", "weights_url", "readme", "latest_version")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    GITHUB_URL_FIELD_NUMBER: _ClassVar[int]
    PAPER_URL_FIELD_NUMBER: _ClassVar[int]
    LICENSE_URL_FIELD_NUMBER: _ClassVar[int]
    COVER_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_URL_FIELD_NUMBER: _ClassVar[int]
    README_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    visibility: str
    hardware: str
    description: str
    created_at: str
    latest_version_id: str
    github_url: str
    paper_url: str
    license_url: str
    cover_image_url: str
    weights_url: str
    readme: str
    latest_version: Version
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., visibility: _Optional[str] = ..., hardware: _Optional[str] = ..., description: _Optional[str] = ..., created_at: _Optional[str] = ..., latest_version_id: _Optional[str] = ..., github_url: _Optional[str] = ..., paper_url: _Optional[str] = ..., license_url: _Optional[str] = ..., cover_image_url: _Optional[str] = ..., weights_url: _Optional[str] = ..., readme: _Optional[str] = ..., latest_version: _Optional[_Union[Version, _Mapping]] = ...) -> None: ...

class CreateModelRequest(_message.Message):
    __slots__ = ("owner", "name", "visibility", "hardware", "description", "github_url", "paper_url", "license_url", "cover_image_url")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    GITHUB_URL_FIELD_NUMBER: _ClassVar[int]
    PAPER_URL_FIELD_NUMBER: _ClassVar[int]
    LICENSE_URL_FIELD_NUMBER: _ClassVar[int]
    COVER_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    visibility: str
    hardware: str
    description: str
    github_url: str
    paper_url: str
    license_url: str
    cover_image_url: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., visibility: _Optional[str] = ..., hardware: _Optional[str] = ..., description: _Optional[str] = ..., github_url: _Optional[str] = ..., paper_url: _Optional[str] = ..., license_url: _Optional[str] = ..., cover_image_url: _Optional[str] = ...) -> None: ...

class GetModelRequest(_message.Message):
    __slots__ = ("owner", "name")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("id", "owner", "name", "created_at", "cog_version", "openapi_schema_json", "package_key", "predictor_ref", "hardware", "concurrency_max")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    COG_VERSION_FIELD_NUMBER: _ClassVar[int]
    OPENAPI_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    PREDICTOR_REF_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_MAX_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    name: str
    created_at: str
    cog_version: str
    openapi_schema_json: str
    package_key: str
    predictor_ref: str
    hardware: str
    concurrency_max: int
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ..., cog_version: _Optional[str] = ..., openapi_schema_json: _Optional[str] = ..., package_key: _Optional[str] = ..., predictor_ref: _Optional[str] = ..., hardware: _Optional[str] = ..., concurrency_max: _Optional[int] = ...) -> None: ...

class CreateVersionRequest(_message.Message):
    __slots__ = ("owner", "name", "version_id", "openapi_schema_json", "cog_version", "package_key", "predictor_ref", "gpu", "concurrency_max")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    OPENAPI_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    COG_VERSION_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_KEY_FIELD_NUMBER: _ClassVar[int]
    PREDICTOR_REF_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_MAX_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    version_id: str
    openapi_schema_json: str
    cog_version: str
    package_key: str
    predictor_ref: str
    gpu: bool
    concurrency_max: int
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., version_id: _Optional[str] = ..., openapi_schema_json: _Optional[str] = ..., cog_version: _Optional[str] = ..., package_key: _Optional[str] = ..., predictor_ref: _Optional[str] = ..., gpu: _Optional[bool] = ..., concurrency_max: _Optional[int] = ...) -> None: ...

class GetVersionRequest(_message.Message):
    __slots__ = ("version_id",)
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    def __init__(self, version_id: _Optional[str] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("owner", "name")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Version]
    def __init__(self, versions: _Optional[_Iterable[_Union[Version, _Mapping]]] = ...) -> None: ...

class GetAccountRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class ListAccountsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAccountsResponse(_message.Message):
    __slots__ = ("accounts",)
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    accounts: _containers.RepeatedCompositeFieldContainer[Account]
    def __init__(self, accounts: _Optional[_Iterable[_Union[Account, _Mapping]]] = ...) -> None: ...

class MembershipRequest(_message.Message):
    __slots__ = ("organization", "member")
    ORGANIZATION_FIELD_NUMBER: _ClassVar[int]
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    organization: str
    member: str
    def __init__(self, organization: _Optional[str] = ..., member: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ("username",)
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    def __init__(self, username: _Optional[str] = ...) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("id", "username", "name", "created_at", "status")
    ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    id: str
    username: str
    name: str
    created_at: str
    status: str
    def __init__(self, id: _Optional[str] = ..., username: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ..., status: _Optional[str] = ...) -> None: ...

class TokenRequest(_message.Message):
    __slots__ = ("token_id", "username")
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    token_id: str
    username: str
    def __init__(self, token_id: _Optional[str] = ..., username: _Optional[str] = ...) -> None: ...

class UpdateModelRequest(_message.Message):
    __slots__ = ("owner", "name", "description", "readme", "github_url", "paper_url", "weights_url", "license_url", "cover_image_url")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    README_FIELD_NUMBER: _ClassVar[int]
    GITHUB_URL_FIELD_NUMBER: _ClassVar[int]
    PAPER_URL_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_URL_FIELD_NUMBER: _ClassVar[int]
    LICENSE_URL_FIELD_NUMBER: _ClassVar[int]
    COVER_IMAGE_URL_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    description: str
    readme: str
    github_url: str
    paper_url: str
    weights_url: str
    license_url: str
    cover_image_url: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., readme: _Optional[str] = ..., github_url: _Optional[str] = ..., paper_url: _Optional[str] = ..., weights_url: _Optional[str] = ..., license_url: _Optional[str] = ..., cover_image_url: _Optional[str] = ...) -> None: ...

class DeleteModelRequest(_message.Message):
    __slots__ = ("owner", "name")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteModelResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("cursor", "limit", "sort_by", "sort_direction", "query", "owners")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    SORT_BY_FIELD_NUMBER: _ClassVar[int]
    SORT_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    sort_by: str
    sort_direction: str
    query: str
    owners: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ..., sort_by: _Optional[str] = ..., sort_direction: _Optional[str] = ..., query: _Optional[str] = ..., owners: _Optional[_Iterable[str]] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models", "next_cursor")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[Model]
    next_cursor: str
    def __init__(self, models: _Optional[_Iterable[_Union[Model, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class DeleteVersionRequest(_message.Message):
    __slots__ = ("owner", "name", "version_id")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    version_id: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., version_id: _Optional[str] = ...) -> None: ...

class DeleteVersionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class File(_message.Message):
    __slots__ = ("id", "owner", "name", "content_type", "size", "sha256", "md5", "metadata_json", "created_at", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MD5_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    name: str
    content_type: str
    size: int
    sha256: str
    md5: str
    metadata_json: str
    created_at: str
    expires_at: str
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., name: _Optional[str] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., md5: _Optional[str] = ..., metadata_json: _Optional[str] = ..., created_at: _Optional[str] = ..., expires_at: _Optional[str] = ...) -> None: ...

class CreateFileRequest(_message.Message):
    __slots__ = ("id", "owner", "name", "content_type", "size", "sha256", "md5", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MD5_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    owner: str
    name: str
    content_type: str
    size: int
    sha256: str
    md5: str
    metadata_json: str
    def __init__(self, id: _Optional[str] = ..., owner: _Optional[str] = ..., name: _Optional[str] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., md5: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class GetFileRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListFilesRequest(_message.Message):
    __slots__ = ("owner", "cursor", "limit")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    owner: str
    cursor: str
    limit: int
    def __init__(self, owner: _Optional[str] = ..., cursor: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files", "next_cursor")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[File]
    next_cursor: str
    def __init__(self, files: _Optional[_Iterable[_Union[File, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class DeleteFileRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteFileResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Collection(_message.Message):
    __slots__ = ("slug", "name", "description", "full_description", "models")
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FULL_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    slug: str
    name: str
    description: str
    full_description: str
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, slug: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., full_description: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class PutCollectionRequest(_message.Message):
    __slots__ = ("slug", "name", "description", "full_description", "models")
    SLUG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FULL_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    slug: str
    name: str
    description: str
    full_description: str
    models: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, slug: _Optional[str] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., full_description: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("slug",)
    SLUG_FIELD_NUMBER: _ClassVar[int]
    slug: str
    def __init__(self, slug: _Optional[str] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ("cursor", "limit", "query")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    limit: int
    query: str
    def __init__(self, cursor: _Optional[str] = ..., limit: _Optional[int] = ..., query: _Optional[str] = ...) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections", "next_cursor")
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[Collection]
    next_cursor: str
    def __init__(self, collections: _Optional[_Iterable[_Union[Collection, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class DeploymentRelease(_message.Message):
    __slots__ = ("number", "model", "version", "created_at", "created_by", "hardware", "min_instances", "max_instances")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    MIN_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    number: int
    model: str
    version: str
    created_at: str
    created_by: Account
    hardware: str
    min_instances: int
    max_instances: int
    def __init__(self, number: _Optional[int] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., created_at: _Optional[str] = ..., created_by: _Optional[_Union[Account, _Mapping]] = ..., hardware: _Optional[str] = ..., min_instances: _Optional[int] = ..., max_instances: _Optional[int] = ...) -> None: ...

class Deployment(_message.Message):
    __slots__ = ("owner", "name", "created_at", "current_release")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_RELEASE_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    created_at: str
    current_release: DeploymentRelease
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ..., current_release: _Optional[_Union[DeploymentRelease, _Mapping]] = ...) -> None: ...

class CreateDeploymentRequest(_message.Message):
    __slots__ = ("owner", "name", "model", "version", "hardware", "min_instances", "max_instances", "created_by")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    MIN_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    model: str
    version: str
    hardware: str
    min_instances: int
    max_instances: int
    created_by: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., hardware: _Optional[str] = ..., min_instances: _Optional[int] = ..., max_instances: _Optional[int] = ..., created_by: _Optional[str] = ...) -> None: ...

class GetDeploymentRequest(_message.Message):
    __slots__ = ("owner", "name")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("owners", "cursor", "limit", "all_owners")
    OWNERS_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ALL_OWNERS_FIELD_NUMBER: _ClassVar[int]
    owners: _containers.RepeatedScalarFieldContainer[str]
    cursor: str
    limit: int
    all_owners: bool
    def __init__(self, owners: _Optional[_Iterable[str]] = ..., cursor: _Optional[str] = ..., limit: _Optional[int] = ..., all_owners: _Optional[bool] = ...) -> None: ...

class ListDeploymentsResponse(_message.Message):
    __slots__ = ("deployments", "next_cursor")
    DEPLOYMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    deployments: _containers.RepeatedCompositeFieldContainer[Deployment]
    next_cursor: str
    def __init__(self, deployments: _Optional[_Iterable[_Union[Deployment, _Mapping]]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class UpdateDeploymentRequest(_message.Message):
    __slots__ = ("owner", "name", "created_by", "version", "hardware", "min_instances", "max_instances")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    MIN_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    created_by: str
    version: str
    hardware: str
    min_instances: int
    max_instances: int
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., created_by: _Optional[str] = ..., version: _Optional[str] = ..., hardware: _Optional[str] = ..., min_instances: _Optional[int] = ..., max_instances: _Optional[int] = ...) -> None: ...

class DeleteDeploymentRequest(_message.Message):
    __slots__ = ("owner", "name")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteDeploymentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
