"""Cursor pagination: absolute `next` URLs on the gateway's origin, cursors that round-trip, bad cursors are 400."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from services.gateway.errors import ApiError
from services.gateway.pagination import decode_cursor, encode_cursor, page_body
from services.registry.adapters.cursors import decode_cursor as registry_decode
from services.registry.adapters.cursors import encode_cursor as registry_encode
from services.registry.domain.errors import InvalidRequest


def test_next_is_an_absolute_url_that_keeps_the_query() -> None:
    body = page_body("http://gw.example:8000/", "/v1/models", [1, 2], "abc=",
                     {"sort_by": "model_created_at", "cursor": "old", "empty": ""})
    assert body["previous"] is None and body["results"] == [1, 2]
    parts = urlsplit(body["next"])
    assert (parts.scheme, parts.netloc, parts.path) == ("http", "gw.example:8000", "/v1/models")
    assert parse_qs(parts.query) == {"sort_by": ["model_created_at"], "cursor": ["abc="]}


def test_the_last_page_has_no_next() -> None:
    assert page_body("http://gw", "/v1/files", [], None) == {"next": None, "previous": None, "results": []}


def test_gateway_cursors_round_trip_and_reject_garbage() -> None:
    assert decode_cursor(encode_cursor("2026-01-01T00:00:00+00:00", "p|1"), 2) == ["2026-01-01T00:00:00+00:00", "p|1"]
    for bad in ("%%%", "bm9waXBl", ""):
        with pytest.raises(ApiError) as raised:
            decode_cursor(bad, 2)
        assert raised.value.status == 400


def test_registry_cursors_round_trip_and_reject_garbage() -> None:
    assert registry_decode(registry_encode(["2026-01-01T00:00:00+00:00", "acme", "model"]), 3) == [
        "2026-01-01T00:00:00+00:00", "acme", "model"]
    assert registry_decode(registry_encode([200]), 1) == [200]
    for bad in ("not base64!", registry_encode(["a"]), registry_encode({"a": 1}), registry_encode([True])):
        with pytest.raises(InvalidRequest):
            registry_decode(bad, 3 if bad != registry_encode([True]) else 1)
