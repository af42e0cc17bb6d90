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


def test_an_unreachable_database_is_unavailable_not_internal() -> None:
    import psycopg
    from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

    refused = psycopg.OperationalError("connection failed: Connection refused")
    assert errors.status_for(OperationalError("SELECT 1", {}, refused)) == grpc.StatusCode.UNAVAILABLE
    assert errors.status_for(refused) == grpc.StatusCode.UNAVAILABLE
    assert errors.status_for(psycopg.InterfaceError("the connection is closed")) == grpc.StatusCode.UNAVAILABLE
    assert errors.status_for(ConnectionRefusedError(111, "refused")) == grpc.StatusCode.UNAVAILABLE
    broken = DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    assert errors.status_for(broken) == grpc.StatusCode.UNAVAILABLE
    # A statement the database refuses is no outage.
    assert errors.status_for(IntegrityError("INSERT", {}, Exception("duplicate key"))) is None


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
