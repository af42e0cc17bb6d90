"""Translation details of the registry's gRPC edge."""

from datetime import datetime, timedelta, timezone

import pytest

from services.registry.domain.errors import InvalidRequest
from services.registry.rpc import _openapi_schema, _timestamp


def test_timestamps_are_rfc3339_in_utc() -> None:
    local = datetime(2026, 3, 1, 13, 0, 0, 250000, tzinfo=timezone(timedelta(hours=1)))
    assert _timestamp(local) == "2026-03-01T12:00:00.250000Z"


def test_openapi_schema_must_be_a_json_object() -> None:
    assert _openapi_schema("") == {}
    assert _openapi_schema('{"openapi": "3.0.2"}') == {"openapi": "3.0.2"}
    for bad in ("{", "[1, 2]", '"text"'):
        with pytest.raises(InvalidRequest):
            _openapi_schema(bad)
