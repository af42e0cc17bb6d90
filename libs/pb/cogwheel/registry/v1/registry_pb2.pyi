# DO NOT EDIT. Regenerate with `make proto` (scripts/gen_proto.py) from protos/.
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Account(_message.Message):
    __slots__ = ("username", "type", "name", "created_at")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    username: str
    type: str
    name: str
    created_at: str
    def __init__(self, username: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[str] = ...) -> None: ...

class EnsureAccountRequest(_message.Message):
    __slots__ = ("username", "type", "name")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    type: str
    name: str
    def __init__(self, username: _Optional[str] = ..., type: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("username", "name")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    username: str
    name: str
    def __init__(self, username: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("token", "token_id")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    token: str
    token_id: str
    def __init__(self, token: _Optional[str] = ..., token_id: _Optional[str] = ...) -> None: ...

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
    __slots__ = ("owner", "name", "visibility", "hardware", "description", "created_at", "latest_version_id")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LATEST_VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    visibility: str
    hardware: str
    description: str
    created_at: str
    latest_version_id: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., visibility: _Optional[str] = ..., hardware: _Optional[str] = ..., description: _Optional[str] = ..., created_at: _Optional[str] = ..., latest_version_id: _Optional[str] = ...) -> None: ...

class CreateModelRequest(_message.Message):
    __slots__ = ("owner", "name", "visibility", "hardware", "description")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    visibility: str
    hardware: str
    description: str
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., visibility: _Optional[str] = ..., hardware: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

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
