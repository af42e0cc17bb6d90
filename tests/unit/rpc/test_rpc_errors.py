"""Domain exception ↔ gRPC status mapping."""

import grpc
import pytest

from libs.rpc import errors


class VersionNotFound(Exception):
    pass


class ModelConflictError(Exception):
    pass


class ConcurrencyError(RuntimeError):
    pass


class InvalidInput(ValueError):
    pass


class Unauthenticated(Exception):
    pass


class SubNotFound(VersionNotFound):
    pass


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (VersionNotFound("x"), grpc.StatusCode.NOT_FOUND),
        (SubNotFound("x"), grpc.StatusCode.NOT_FOUND),
        (ModelConflictError("x"), grpc.StatusCode.ALREADY_EXISTS),
        (ConcurrencyError("x"), grpc.StatusCode.ABORTED),
        (InvalidInput("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (Unauthenticated("x"), grpc.StatusCode.UNAUTHENTICATED),
        (RuntimeError("x"), None),
        (ValueError("x"), None),
    ],
)
def test_status_for_by_name(exc: Exception, code: grpc.StatusCode | None) -> None:
    assert errors.status_for(exc) == code


def test_explicit_map_wins() -> None:
    mapping = {ValueError: grpc.StatusCode.FAILED_PRECONDITION}
    assert errors.status_for(InvalidInput("x"), mapping) == grpc.StatusCode.FAILED_PRECONDITION


def test_typed_client_errors() -> None:
    err = errors.RpcError.build(grpc.StatusCode.NOT_FOUND, "no such version")
    assert isinstance(err, errors.RpcNotFound)
    assert isinstance(err, grpc.aio.AioRpcError)
    assert err.details() == "no such version"
    assert isinstance(errors.RpcError.build(grpc.StatusCode.ABORTED), errors.RpcConflict)
    assert isinstance(errors.RpcError.build(grpc.StatusCode.ALREADY_EXISTS), errors.RpcConflict)
    assert type(errors.RpcError.build(grpc.StatusCode.DATA_LOSS)) is errors.RpcError
