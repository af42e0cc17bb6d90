"""A lean HTTP/1.1 client for load generation: one keep-alive connection, one request at a time.

The throughput benchmark runs its clients on the same cores as the platform it measures, so whatever the load
generator spends is taken from the services. httpx spends several milliseconds of CPU per request (its
transport layers, h11 and anyio); this client writes the request bytes itself and parses the answer with
httptools, for a small fraction of that, so the rate measured is the platform's rather than the client's.
It speaks only what the benchmark needs: JSON bodies, `Content-Length` answers, keep-alive.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import urlsplit

import httptools


class Response:
    def __init__(self, status_code: int, body: bytes) -> None:
        self.status_code = status_code
        self.content = body

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


class _Parsed:
    """httptools callbacks: collects one answer's body and notices its end."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        # Read here: once the message is complete the parser resets and no longer says.
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


# A connection idle this long is replaced before the next request: the server closes idle keep-alive connections
# (after 5 s), and a create sent on a connection it is closing at that moment fails and is not safe to repeat.
IDLE_EXPIRY_SECONDS = 2.0


class LeanClient:
    """One connection to `base_url`, opened on first use and again after the server closed it."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        fixed = {"Host": f"{self._host}:{self._port}", **headers}
        self._headers = "".join(f"{name}: {value}\r\n" for name, value in fixed.items()).encode("latin-1")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_used = 0.0

    async def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Response:
        payload = json.dumps(body).encode()
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()).encode("latin-1")
        head = (f"POST {path} HTTP/1.1\r\n".encode() + self._headers + extra
                + f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode())
        return await self._request(head + payload)

    async def get(self, path: str) -> Response:
        return await self._request(f"GET {path} HTTP/1.1\r\n".encode() + self._headers + b"\r\n")

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None

    async def _request(self, request: bytes) -> Response:
        if self._writer is not None and time.monotonic() - self._last_used > IDLE_EXPIRY_SECONDS:
            await self.close()
        if self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        assert self._reader is not None
        self._writer.write(request)
        parsed = _Parsed()
        while not parsed.complete:
            data = await self._reader.read(65536)
            if not data:
                await self.close()
                raise ConnectionError("the server closed the connection before answering")
            parsed.parser.feed_data(data)
        self._last_used = time.monotonic()
        if not parsed.keep_alive:
            await self.close()
        return Response(parsed.parser.get_status_code(), b"".join(parsed.body))
