"""The gateway's HTTP protocol: a request's line and headers are bounded in time and size, its body is not."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.gateway.http_protocol import with_header_timeout


async def _echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse({"body_bytes": len(body), "x": request.headers.get("x-big", "")[:10]})


@pytest.fixture
async def port() -> AsyncIterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = uvicorn.Config(Starlette(routes=[Route("/", _echo, methods=["GET", "POST"])]), host="127.0.0.1",
                            port=free, log_level="error", lifespan="off",
                            http=with_header_timeout(0.5, max_header_bytes=8 * 1024))
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield free
    server.should_exit = True
    await serving


async def _exchange(port: int, request: bytes, *, read_for: float = 5) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := await asyncio.wait_for(reader.read(65536), read_for):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.split(b"\r\n\r\n", 1)[1]:
                    break
        return answer
    finally:
        writer.close()


async def test_requests_with_headers_within_the_limit_are_served_keep_alive(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(2):  # the same connection serves the next request
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            assert b'"x":"aaaaaaaaaa"' in await reader.readexactly(length)
    finally:
        writer.close()


async def test_headers_beyond_the_limit_get_400_and_the_connection_closes(port: int) -> None:
    answer = await _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:100]
    endless = await _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000)  # never ends
    assert endless.startswith(b"HTTP/1.1 400"), endless[:100]


async def test_a_body_larger_than_the_header_limit_is_read_whole(port: int) -> None:
    body = b"b" * 100_000
    answer = await _exchange(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    assert answer.startswith(b"HTTP/1.1 200") and b'"body_bytes":100000' in answer, answer[:200]


async def test_headers_not_complete_within_the_deadline_close_the_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        closed = False
        for _ in range(20):
            with contextlib.suppress(ConnectionError):
                writer.write(b"X-Slow: 1\r\n")  # a header line at a time: never complete
                await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), 0.2) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
                break
        assert closed
    finally:
        writer.close()
