"""Hostile requests at the gateway: oversized and malformed bodies, odd paths and headers, stalled bodies and
failed-authentication floods get 4xx in Replicate's problem format, never 5xx, and a big body is cut while it
streams in."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from services.gateway import errors
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.auth_failures import FailedAuthThrottle
from services.gateway.cancel_after import parse_cancel_after
from services.gateway.errors import ApiError
from services.gateway.limits import MAX_JSON_DEPTH, RequestLimits, RequestLimitsMiddleware
from services.gateway.routes.predictions import parse_prefer_wait

ALICE = Account("alice", "user", "Alice", token_id="t-alice")


class FakeRegistry:
    """Knows cwk_alice and cwk_bob; like the real client, remembers tokens that authenticated."""

    def __init__(self) -> None:
        self.lookups = 0
        self.cached: set[str] = set()

    async def authenticate(self, token: str) -> Account | None:
        self.lookups += 1
        if token in ("cwk_alice", "cwk_bob"):
            self.cached.add(token)
            return ALICE
        return None

    def known_account(self, token: str) -> Account | None:
        return ALICE if token in self.cached else None


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def _app(limits: RequestLimits, clock: Clock | None = None) -> FastAPI:
    app = FastAPI()
    errors.install(app)
    app.state.deps = SimpleNamespace(registry=FakeRegistry(), rate_limiter=None)
    app.state.auth_throttle = FailedAuthThrottle(3, 60, clock=clock or Clock())
    app.state.seen = []

    @app.post("/v1/predictions")
    async def create(request: Request) -> dict[str, Any]:
        body = await request.json()
        app.state.seen.append(body)
        return {"ok": True}

    @app.post("/v1/files")
    async def upload(request: Request) -> dict[str, int]:
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
        return {"size": size}

    @app.get("/v1/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        return {"name": name}

    @app.get("/v1/account")
    async def me(account: Account = Depends(current_account)) -> dict[str, str]:
        return {"username": account.username}

    app.add_middleware(RequestLimitsMiddleware, limits=limits)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = _app(RequestLimits(max_json_body_bytes=64 * 1024, max_input_bytes=8 * 1024, body_read_timeout=0.5))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
        http.app = app  # type: ignore[attr-defined]
        yield http


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


async def test_a_valid_body_reaches_the_route_unchanged(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/predictions", json={"version": "v", "input": {"text": "héllo 🎉"}})
    assert response.status_code == 200
    assert client.app.state.seen == [{"version": "v", "input": {"text": "héllo 🎉"}}]  # type: ignore[attr-defined]


async def test_an_oversized_body_is_cut_while_it_streams(client: httpx.AsyncClient) -> None:
    sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal sent
        while sent < 300 * 1024 * 1024:
            sent += 16 * 1024
            yield b" " * (16 * 1024)

    response = await client.post("/v1/predictions", content=endless(), headers={"content-type": "application/json"})
    assert "larger than the limit of 65536 bytes" in _problem(response, 413)["detail"]
    assert sent < 1024 * 1024
    declared = await client.post("/v1/predictions", content=b"{}", headers={"content-length": str(10**9)})
    _problem(declared, 413)


async def test_an_oversized_input_is_refused_before_the_scheduler(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/predictions", json={"version": "v", "input": {"data": "x" * 20_000}})
    assert "POST /v1/files" in _problem(response, 413)["detail"]
    response = await client.post("/v1/models/o/n/predictions", json={"input": {"data": "x" * 20_000}})
    _problem(response, 413)


@pytest.mark.parametrize(
    ("raw", "status", "needle"),
    [
        ('{"input": {"text": "a\\u0000b"}}', 422, "NUL"),
        ('{"input": {"text": "\\ud800"}}', 422, "surrogate"),
        ('{"input": {"x\\u0000": 1}}', 422, "NUL"),
        ('{"input": {"n": NaN}}', 422, "NaN"),
        ('{"input": {"n": Infinity}}', 422, "Infinity"),
        ('{"input": {"n": -Infinity}}', 422, "Infinity"),
        ('{"input": {"n": 1e400}}', 422, "out of range"),
        ('{"input": ' + "[" * 5000 + "]" * 5000 + "}", 422, "nested"),
        ('{"input": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}", 422, "nested"),
        ('{"input": ', 400, "not valid JSON"),
        (b'{"input": "\xff"}', 400, "UTF-8"),
    ],
)
async def test_malformed_bodies_are_4xx(client: httpx.AsyncClient, raw: str | bytes, status: int, needle: str) -> None:
    content = raw.encode() if isinstance(raw, str) else raw
    response = await client.post("/v1/predictions", content=content, headers={"content-type": "application/json"})
    assert needle in _problem(response, status)["detail"]
    assert client.app.state.seen == []  # type: ignore[attr-defined]


async def test_nul_in_a_path_or_query_is_400(client: httpx.AsyncClient) -> None:
    _problem(await client.get("/v1/things/a%00b"), 400)
    _problem(await client.get("/v1/things/a?x=%00"), 400)
    _problem(await client.get("/v1/things/%ff%fe"), 400)
    assert (await client.get("/v1/things/ok")).json() == {"name": "ok"}


async def test_a_stalled_json_body_is_408(client: httpx.AsyncClient) -> None:
    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"input": '
        await asyncio.sleep(5)
        yield b"{}}"

    response = await client.post("/v1/predictions", content=stalls(), headers={"content-type": "application/json"})
    assert "did not arrive within 0.5 seconds" in _problem(response, 408)["detail"]


async def test_a_stalled_upload_is_408(client: httpx.AsyncClient) -> None:
    async def stalls() -> AsyncIterator[bytes]:
        yield b"x" * 1000
        await asyncio.sleep(5)
        yield b"y"

    response = await client.post("/v1/files", content=stalls())
    assert "stopped arriving" in _problem(response, 408)["detail"]
    assert (await client.post("/v1/files", content=b"z" * 300_000)).json() == {"size": 300_000}


def test_odd_headers_are_4xx() -> None:
    assert parse_prefer_wait("wait=" + "9" * 5000).seconds == 60  # type: ignore[union-attr]
    assert parse_prefer_wait("wait=0005").seconds == 5  # type: ignore[union-attr]
    for header in ("9" * 5000, "1" + "0" * 400 + "s", "99999999999h"):
        with pytest.raises(ApiError) as refused:
            parse_cancel_after(header)
        assert refused.value.status in (400, 422)


async def test_failed_authentications_are_throttled_per_address() -> None:
    clock = Clock()
    app = _app(RequestLimits(), clock)
    registry: FakeRegistry = app.state.deps.registry
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as http:
        good = {"Authorization": "Bearer cwk_alice"}
        for _ in range(5):
            assert (await http.get("/v1/account", headers=good)).status_code == 200
        for _ in range(3):
            _problem(await http.get("/v1/account", headers={"Authorization": "Bearer cwk_guess"}), 401)
        lookups = registry.lookups
        throttled = await http.get("/v1/account", headers={"Authorization": "Bearer cwk_guess2"})
        assert _problem(throttled, 429) and throttled.headers["Retry-After"] == "60"
        assert registry.lookups == lookups, "a throttled address must not reach the registry"
        clock.now = 30
        assert (await http.get("/v1/account", headers=good)).status_code == 200, "a known token keeps working"
        unseen = await http.get("/v1/account", headers={"Authorization": "Bearer cwk_bob"})
        assert unseen.headers["Retry-After"] == "30" and registry.lookups == lookups
        clock.now = 61
        assert (await http.get("/v1/account", headers={"Authorization": "Bearer cwk_bob"})).status_code == 200


def test_the_throttle_forgets_old_failures() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(2, 10, clock=clock)
    throttle.record_failure("a")
    clock.now = 9
    throttle.record_failure("a")
    assert throttle.retry_after("a") == 1 and throttle.retry_after("b") == 0
    clock.now = 10.5
    assert throttle.retry_after("a") == 0
    assert json.dumps(FailedAuthThrottle(0, 10).retry_after("a")) == "0"
