# DO NOT EDIT. Regenerate with `make proto` (scripts/gen_proto.py) from protos/.
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetSigningSecretRequest(_message.Message):
    __slots__ = ("account",)
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    account: str
    def __init__(self, account: _Optional[str] = ...) -> None: ...

class SigningSecret(_message.Message):
    __slots__ = ("key",)
    KEY_FIELD_NUMBER: _ClassVar[int]
    key: str
    def __init__(self, key: _Optional[str] = ...) -> None: ...

class ListDeliveryAttemptsRequest(_message.Message):
    __slots__ = ("prediction_id", "account")
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    prediction_id: str
    account: str
    def __init__(self, prediction_id: _Optional[str] = ..., account: _Optional[str] = ...) -> None: ...

class DeliveryAttempt(_message.Message):
    __slots__ = ("id", "prediction_id", "webhook_id", "webhook_event", "url", "status_code", "latency_ms", "error", "attempt", "outcome", "attempted_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    PREDICTION_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_EVENT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    prediction_id: str
    webhook_id: str
    webhook_event: str
    url: str
    status_code: int
    latency_ms: float
    error: str
    attempt: int
    outcome: str
    attempted_at: str
    def __init__(self, id: _Optional[str] = ..., prediction_id: _Optional[str] = ..., webhook_id: _Optional[str] = ..., webhook_event: _Optional[str] = ..., url: _Optional[str] = ..., status_code: _Optional[int] = ..., latency_ms: _Optional[float] = ..., error: _Optional[str] = ..., attempt: _Optional[int] = ..., outcome: _Optional[str] = ..., attempted_at: _Optional[str] = ...) -> None: ...

class ListDeliveryAttemptsResponse(_message.Message):
    __slots__ = ("attempts",)
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    attempts: _containers.RepeatedCompositeFieldContainer[DeliveryAttempt]
    def __init__(self, attempts: _Optional[_Iterable[_Union[DeliveryAttempt, _Mapping]]] = ...) -> None: ...

class GetDeliverySummaryRequest(_message.Message):
    __slots__ = ("account", "hours")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    HOURS_FIELD_NUMBER: _ClassVar[int]
    account: str
    hours: int
    def __init__(self, account: _Optional[str] = ..., hours: _Optional[int] = ...) -> None: ...

class EventSummary(_message.Message):
    __slots__ = ("webhook_event", "attempts", "delivered", "failed", "retried")
    WEBHOOK_EVENT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    webhook_event: str
    attempts: int
    delivered: int
    failed: int
    retried: int
    def __init__(self, webhook_event: _Optional[str] = ..., attempts: _Optional[int] = ..., delivered: _Optional[int] = ..., failed: _Optional[int] = ..., retried: _Optional[int] = ...) -> None: ...

class DeliverySummary(_message.Message):
    __slots__ = ("hours", "attempts", "delivered", "failed", "retried", "latency_p50_ms", "latency_p99_ms", "events")
    HOURS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P50_MS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_P99_MS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    hours: int
    attempts: int
    delivered: int
    failed: int
    retried: int
    latency_p50_ms: float
    latency_p99_ms: float
    events: _containers.RepeatedCompositeFieldContainer[EventSummary]
    def __init__(self, hours: _Optional[int] = ..., attempts: _Optional[int] = ..., delivered: _Optional[int] = ..., failed: _Optional[int] = ..., retried: _Optional[int] = ..., latency_p50_ms: _Optional[float] = ..., latency_p99_ms: _Optional[float] = ..., events: _Optional[_Iterable[_Union[EventSummary, _Mapping]]] = ...) -> None: ...
