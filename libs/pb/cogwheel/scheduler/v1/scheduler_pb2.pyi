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

class Node(_message.Message):
    __slots__ = ("id", "hardware", "slots", "gpu_memory_mib", "gpu_memory_used_mib", "instances", "draining", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    HARDWARE_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_USED_MIB_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    hardware: str
    slots: int
    gpu_memory_mib: int
    gpu_memory_used_mib: int
    instances: _containers.RepeatedScalarFieldContainer[str]
    draining: bool
    updated_at: str
    def __init__(self, id: _Optional[str] = ..., hardware: _Optional[str] = ..., slots: _Optional[int] = ..., gpu_memory_mib: _Optional[int] = ..., gpu_memory_used_mib: _Optional[int] = ..., instances: _Optional[_Iterable[str]] = ..., draining: _Optional[bool] = ..., updated_at: _Optional[str] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[Node, _Mapping]]] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("id", "queue", "version", "deployment", "node", "state", "since", "predictions_served", "boot_time", "gpu_memory_mib", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    PREDICTIONS_SERVED_FIELD_NUMBER: _ClassVar[int]
    BOOT_TIME_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_MIB_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    queue: str
    version: str
    deployment: str
    node: str
    state: str
    since: str
    predictions_served: int
    boot_time: float
    gpu_memory_mib: int
    reason: str
    def __init__(self, id: _Optional[str] = ..., queue: _Optional[str] = ..., version: _Optional[str] = ..., deployment: _Optional[str] = ..., node: _Optional[str] = ..., state: _Optional[str] = ..., since: _Optional[str] = ..., predictions_served: _Optional[int] = ..., boot_time: _Optional[float] = ..., gpu_memory_mib: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class ListInstancesRequest(_message.Message):
    __slots__ = ("include_ended",)
    INCLUDE_ENDED_FIELD_NUMBER: _ClassVar[int]
    include_ended: bool
    def __init__(self, include_ended: _Optional[bool] = ...) -> None: ...

class ListInstancesResponse(_message.Message):
    __slots__ = ("instances",)
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    def __init__(self, instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ...) -> None: ...

class Queue(_message.Message):
    __slots__ = ("label", "queue", "deployment", "waiting", "running", "oldest_age_seconds")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    OLDEST_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    label: str
    queue: str
    deployment: str
    waiting: int
    running: int
    oldest_age_seconds: float
    def __init__(self, label: _Optional[str] = ..., queue: _Optional[str] = ..., deployment: _Optional[str] = ..., waiting: _Optional[int] = ..., running: _Optional[int] = ..., oldest_age_seconds: _Optional[float] = ...) -> None: ...

class ListQueuesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListQueuesResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[Queue]
    def __init__(self, queues: _Optional[_Iterable[_Union[Queue, _Mapping]]] = ...) -> None: ...

class DrainNodeRequest(_message.Message):
    __slots__ = ("node", "undo")
    NODE_FIELD_NUMBER: _ClassVar[int]
    UNDO_FIELD_NUMBER: _ClassVar[int]
    node: str
    undo: bool
    def __init__(self, node: _Optional[str] = ..., undo: _Optional[bool] = ...) -> None: ...

class DrainNodeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ScaleDeploymentRequest(_message.Message):
    __slots__ = ("owner", "name", "min_instances", "max_instances")
    OWNER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MIN_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    owner: str
    name: str
    min_instances: int
    max_instances: int
    def __init__(self, owner: _Optional[str] = ..., name: _Optional[str] = ..., min_instances: _Optional[int] = ..., max_instances: _Optional[int] = ...) -> None: ...

class ScaleDeploymentResponse(_message.Message):
    __slots__ = ("min_instances", "max_instances")
    MIN_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    MAX_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    min_instances: int
    max_instances: int
    def __init__(self, min_instances: _Optional[int] = ..., max_instances: _Optional[int] = ...) -> None: ...
