"""The throughput benchmark's lean HTTP client against a real uvicorn server on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import uvicorn

from benchmarks import loadgen
from benchmarks.loadgen import LeanClient
from libs.infra import free_port

SEEN: list[dict[str, object]] = []


async def _app(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = {name.decode(): value.decode() for name, value in scope["headers"]}
    SEEN.append({"method": scope["method"], "path": scope["path"], "headers": headers, "body": body})
    answer = json.dumps({"path": scope["path"], "echo": json.loads(body) if body else None, "pad": "x" * 100_000})
    extra = [(b"connection", b"close")] if scope["path"] == "/close" else []
    status = 201 if scope["method"] == "POST" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), *extra]})
    await send({"type": "http.response.body", "body": answer.encode()})


@pytest.fixture
async def base_url() -> AsyncIterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    SEEN.clear()
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def test_posts_json_and_reads_answers_larger_than_one_read_on_one_connection(base_url: str) -> None:
    client = LeanClient(base_url, {"Authorization": "Bearer t"})
    try:
        created = await client.post("/v1/predictions", {"input": {"text": "world"}}, {"Prefer": "wait"})
        fetched = await client.get("/v1/predictions/abc")
    finally:
        await client.close()
    assert created.status_code == 201
    assert created.json()["echo"] == {"input": {"text": "world"}}
    assert len(created.json()["pad"]) == 100_000
    assert fetched.status_code == 200 and fetched.json()["path"] == "/v1/predictions/abc"
    post, get = SEEN
    assert post["headers"]["authorization"] == "Bearer t" and post["headers"]["prefer"] == "wait"
    assert post["headers"]["content-type"] == "application/json"
    assert get["method"] == "GET" and get["headers"]["authorization"] == "Bearer t"
    # Both requests went over one keep-alive connection.
    assert post["headers"]["host"] == get["headers"]["host"]


async def test_a_connection_the_server_closes_or_that_sat_idle_is_replaced(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = LeanClient(base_url, {})
    try:
        assert (await client.get("/close")).status_code == 200
        assert client._writer is None  # the server said `Connection: close`
        assert (await client.get("/after-close")).status_code == 200
        first = client._writer
        monkeypatch.setattr(loadgen, "IDLE_EXPIRY_SECONDS", 0.0)
        await asyncio.sleep(0.01)
        assert (await client.get("/after-idle")).status_code == 200
        assert client._writer is not first
    finally:
        await client.close()
    assert [seen["path"] for seen in SEEN] == ["/close", "/after-close", "/after-idle"]
