"""grpc.aio server and channel factories, tracing and error-mapping interceptors, health."""

from libs.rpc.channel import (
    DEFAULT_TIMEOUT_S,
    DefaultDeadlineInterceptor,
    create_channel,
    failover_options,
    failover_options_for,
)
from libs.rpc.errors import (
    ErrorMappingClientInterceptor,
    ErrorMappingServerInterceptor,
    RpcAborted,
    RpcAlreadyExists,
    RpcConflict,
    RpcDeadlineExceeded,
    RpcError,
    RpcFailedPrecondition,
    RpcInvalidArgument,
    RpcNotFound,
    RpcPermissionDenied,
    RpcUnauthenticated,
    RpcUnavailable,
    status_for,
)
from libs.rpc.server import RpcServer, create_server
from libs.rpc.tracing import TracingClientInterceptor, TracingServerInterceptor

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DefaultDeadlineInterceptor",
    "ErrorMappingClientInterceptor",
    "ErrorMappingServerInterceptor",
    "RpcAborted",
    "RpcAlreadyExists",
    "RpcConflict",
    "RpcDeadlineExceeded",
    "RpcError",
    "RpcFailedPrecondition",
    "RpcInvalidArgument",
    "RpcNotFound",
    "RpcPermissionDenied",
    "RpcServer",
    "RpcUnauthenticated",
    "RpcUnavailable",
    "TracingClientInterceptor",
    "TracingServerInterceptor",
    "create_channel",
    "create_server",
    "failover_options",
    "failover_options_for",
    "status_for",
]
