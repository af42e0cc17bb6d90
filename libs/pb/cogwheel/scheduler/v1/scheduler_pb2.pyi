# DO NOT EDIT. Regenerate with `make proto` (scripts/gen_proto.py) from protos/.
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Prediction(_message.Message):
    __slots__ = ("id", "model", "version", "input_json", "output_json", "logs", "error", "status", "created_at", "started_at", "completed_at", "predict_time", "webhook", "webhook_events_filter", "account", "source", "stream", "deadline", "deployment", "stream_token", "data_removed", "idempotent_replay")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    PREDICT_TIME_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENTS_FILTER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    STREAM_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DATA_REMOVED_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENT_REPLAY_FIELD_NUMBER: _ClassVar[int]
    id: str
    model: str
    version: str
    input_json: str
    output_json: str
    logs: str
    error: str
    status: str
    created_at: str
    started_at: str
    completed_at: str
    predict_time: float
    webhook: str
    webhook_events_filter: _containers.RepeatedScalarFieldContainer[str]
    account: str
    source: str
    stream: bool
    deadline: str
    deployment: str
    stream_token: str
    data_removed: bool
    idempotent_replay: bool
    def __init__(self, id: _Optional[str] = ..., model: _Optional[str] = ..., version: _Optional[str] = ..., input_json: _Optional[str] = ..., output_json: _Optional[str] = ..., logs: _Optional[str] = ..., error: _Optional[str] = ..., status: _Optional[str] = ..., created_at: _Optional[str] = ..., started_at: _Optional[str] = ..., completed_at: _Optional[str] = ..., predict_time: _Optional[float] = ..., webhook: _Optional[str] = ..., webhook_events_filter: _Optional[_Iterable[str]] = ..., account: _Optional[str] = ..., source: _Optional[str] = ..., stream: _Optional[bool] = ..., deadline: _Optional[str] = ..., deployment: _Optional[str] = ..., stream_token: _Optional[str] = ..., data_removed: _Optional[bool] = ..., idempotent_replay: _Optional[bool] = ...) -> None: ...

class CreatePredictionRequest(_message.Message):
    __slots__ = ("version_id", "input_json", "webhook", "webhook_events_filter", "account", "source", "cancel_after_seconds", "deployment", "hardware", "idempotency_key", "request_fingerprint")
    VERSION_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENTS_FILTER_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    version_id: str
    input_json: str
    webhook: str
    webhook_events_filter: _containers.RepeatedScalarFieldContainer[str]
    account: str
    source: str
    cancel_after_seconds: float
    deployment: str
    hardware: str
    idempotency_key: str
    request_fingerprint: str
    def __init__(self, version_id: _Optional[str] = ..., input_json: _Optional[str] = ..., webhook: _Optional[str] = ..., webhook_events_filter: _Optional[_Iterable[str]] = ..., account: _Optional[str] = ..., source: _Optional[str] = ..., cancel_after_seconds: _Optional[float] = ..., deployment: _Optional[str] = ..., hardware: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., request_fingerprint: _Optional[str] = ...) -> None: ...

class GetPredictionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelPredictionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListPredictionEventsRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class EventRecord(_message.Message):
    __slots__ = ("id", "type", "schema_version", "stream_id", "stream_version", "position", "occurred_at", "data_json", "metadata_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_VERSION_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_VERSION_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: str
    schema_version: int
    stream_id: str
    stream_version: int
    position: int
    occurred_at: str
    data_json: str
    metadata_json: str
    def __init__(self, id: _Optional[str] = ..., type: _Optional[str] = ..., schema_version: _Optional[int] = ..., stream_id: _Optional[str] = ..., stream_version: _Optional[int] = ..., position: _Optional[int] = ..., occurred_at: _Optional[str] = ..., data_json: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class ListPredictionEventsResponse(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EventRecord]
    def __init__(self, events: _Optional[_Iterable[_Union[EventRecord, _Mapping]]] = ...) -> None: ...
