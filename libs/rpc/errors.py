"""Map domain exceptions to gRPC status codes on servers and status codes to typed errors on clients."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import grpc
from grpc.aio import AioRpcError, Metadata

from libs.rpc._handlers import wrap_unary_unary

log = logging.getLogger(__name__)

# Services keep grpc out of their domain, so their exceptions are matched by a class-name fragment
# (anywhere in the MRO): `VersionNotFound`, `ModelConflictError`, `InvalidInput` need no shared base.
NAME_RULES: tuple[tuple[str, grpc.StatusCode], ...] = (
    ("NotFound", grpc.StatusCode.NOT_FOUND),
    ("AlreadyExists", grpc.StatusCode.ALREADY_EXISTS),
    ("Conflict", grpc.StatusCode.ALREADY_EXISTS),
    ("ConcurrencyError", grpc.StatusCode.ABORTED),
    ("Invalid", grpc.StatusCode.INVALID_ARGUMENT),
    ("ValidationError", grpc.StatusCode.INVALID_ARGUMENT),
    ("Unauthenticated", grpc.StatusCode.UNAUTHENTICATED),
    ("PermissionDenied", grpc.StatusCode.PERMISSION_DENIED),
    ("Forbidden", grpc.StatusCode.PERMISSION_DENIED),
    ("FailedPrecondition", grpc.StatusCode.FAILED_PRECONDITION),
    ("Unavailable", grpc.StatusCode.UNAVAILABLE),
)

ErrorMap = Mapping[type[BaseException], grpc.StatusCode]

# A database (or other backend) that cannot be reached right now: SQLAlchemy's and the driver's
# OperationalError/InterfaceError (connection refused or broken, server shutting down), matched by name so that
# this module needs neither. Retrying later may succeed, so the caller gets UNAVAILABLE (the gateway: 503 with
# Retry-After), not INTERNAL.
UNREACHABLE_NAMES = ("OperationalError", "InterfaceError")


def backend_unreachable(exc: BaseException) -> bool:
    """Whether `exc` says a backend (PostgreSQL, a peer) is unreachable or its connection broke."""
    if isinstance(exc, ConnectionError) or getattr(exc, "connection_invalidated", False):
        return True
    return any(cls.__name__ in UNREACHABLE_NAMES for cls in type(exc).__mro__)


def status_for(exc: BaseException, error_map: ErrorMap | None = None) -> grpc.StatusCode | None:
    """The status code for a domain exception, or None when it is unexpected.

    Args:
        exc: The raised exception.
        error_map: Explicit class → code entries, checked (with subclasses) before the name rules.
    """
    for cls, code in (error_map or {}).items():
        if isinstance(exc, cls):
            return code
    if backend_unreachable(exc):
        return grpc.StatusCode.UNAVAILABLE
    for cls in type(exc).__mro__:
        name = cls.__name__
        for pattern, code in NAME_RULES:
            if pattern in name:
                return code
    return None


class RpcError(AioRpcError):
    """A failed RPC as seen by a client; subclasses name the status code."""

    @classmethod
    def from_aio(cls, err: AioRpcError) -> RpcError:
        """Wrap a grpc.aio error in the typed subclass for its status code."""
        typed = _CLIENT_ERRORS.get(err.code(), RpcError)
        return typed(
            err.code(),
            err.initial_metadata() or Metadata(),
            err.trailing_metadata() or Metadata(),
            err.details(),
            err.debug_error_string(),
        )

    @classmethod
    def build(cls, code: grpc.StatusCode, details: str = "") -> RpcError:
        """Construct the typed error for ``code`` without a real call (handy in fakes)."""
        typed = _CLIENT_ERRORS.get(code, RpcError)
        return typed(code, Metadata(), Metadata(), details, None)

    def __str__(self) -> str:
        return f"{self.code().name}: {self.details()}"


class RpcNotFound(RpcError):
    """NOT_FOUND."""


class RpcConflict(RpcError):
    """ALREADY_EXISTS or ABORTED: the write clashed with existing state."""


class RpcAlreadyExists(RpcConflict):
    """ALREADY_EXISTS."""


class RpcAborted(RpcConflict):
    """ABORTED (e.g. an optimistic-concurrency clash; retrying may succeed)."""


class RpcInvalidArgument(RpcError):
    """INVALID_ARGUMENT."""


class RpcUnauthenticated(RpcError):
    """UNAUTHENTICATED."""


class RpcPermissionDenied(RpcError):
    """PERMISSION_DENIED."""


class RpcFailedPrecondition(RpcError):
    """FAILED_PRECONDITION."""


class RpcUnavailable(RpcError):
    """UNAVAILABLE: the peer could not be reached."""


class RpcDeadlineExceeded(RpcError):
    """DEADLINE_EXCEEDED."""


_CLIENT_ERRORS: dict[grpc.StatusCode, type[RpcError]] = {
    grpc.StatusCode.NOT_FOUND: RpcNotFound,
    grpc.StatusCode.ALREADY_EXISTS: RpcAlreadyExists,
    grpc.StatusCode.ABORTED: RpcAborted,
    grpc.StatusCode.INVALID_ARGUMENT: RpcInvalidArgument,
    grpc.StatusCode.UNAUTHENTICATED: RpcUnauthenticated,
    grpc.StatusCode.PERMISSION_DENIED: RpcPermissionDenied,
    grpc.StatusCode.FAILED_PRECONDITION: RpcFailedPrecondition,
    grpc.StatusCode.UNAVAILABLE: RpcUnavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: RpcDeadlineExceeded,
}


class ErrorMappingServerInterceptor(grpc.aio.ServerInterceptor):
    """Abort unary calls with the mapped status when a handler raises a domain exception.

    Unexpected exceptions are logged and reported as INTERNAL without leaking their text.
    """

    def __init__(self, error_map: ErrorMap | None = None) -> None:
        self.error_map = dict(error_map or {})

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        method = handler_call_details.method

        def wrap(behavior):  # type: ignore[no-untyped-def]
            async def mapped(request, context):  # type: ignore[no-untyped-def]
                try:
                    return await behavior(request, context)
                except grpc.RpcError:
                    raise  # context.abort() already chose the status
                except Exception as exc:
                    code = status_for(exc, self.error_map)
                    if code is not None:
                        await context.abort(code, str(exc) or type(exc).__name__)
                    log.exception("unhandled error in %s", method)
                    await context.abort(grpc.StatusCode.INTERNAL, "internal error")

            return mapped

        return wrap_unary_unary(handler, wrap)


class ErrorMappingClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Raise typed ``RpcError`` subclasses (``RpcNotFound`` ...) instead of bare ``AioRpcError``."""

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        try:
            call = await continuation(client_call_details, request)
            await call
        except RpcError:
            raise
        except AioRpcError as err:
            raise RpcError.from_aio(err) from None
        return call
