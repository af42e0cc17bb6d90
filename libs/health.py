"""A minimal HTTP `/healthz` endpoint for services that serve no HTTP of their own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable


async def serve_health(
    service: str, port: int, ready: Callable[[], bool], host: str = "127.0.0.1"
) -> asyncio.Server | None:
    """Answer 200 while `ready()` holds, 503 otherwise; port 0 means no endpoint."""
    if not port:
        return None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            is_health = request_line.split(b" ")[1:2] == [b"/healthz"]
            ok = is_health and ready()
            status = "200 OK" if ok else ("503 Service Unavailable" if is_health else "404 Not Found")
            body = json.dumps({"status": "ok" if ok else "unavailable", "service": service}).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError, IndexError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
