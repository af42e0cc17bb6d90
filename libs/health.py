"""Liveness (`/healthz`) and readiness (`/readyz`) over HTTP, for services that serve no HTTP of their own.

Liveness says the process works (a supervisor restarts it when not). Readiness says the dependencies it needs
answer right now, NATS connected and PostgreSQL reachable, each checked within a short timeout; a load balancer
or `cogwheel up` sends it work only then. A service that is live but not ready must not be restarted: it waits
for its dependency to come back.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["Check", "broker_check", "nats_check", "postgres_check", "readiness", "serve_health"]

# A check returns normally when its dependency answers and raises (any exception) when it does not.
Check = Callable[[], Awaitable[None]]
CHECK_TIMEOUT_SECONDS = 2.0


def nats_check(bus: Any) -> Check:
    """The connection is up and the server answers a round trip."""

    async def check() -> None:
        if not bus.nc.is_connected:
            raise ConnectionError("not connected")
        await bus.nc.flush(timeout=CHECK_TIMEOUT_SECONDS)

    return check


def broker_check(broker: Any) -> Check:
    """FastStream's broker (a NATS connection of its own, for the subscribers it runs) is connected."""

    async def check() -> None:
        if not await broker.ping(timeout=CHECK_TIMEOUT_SECONDS / 2):  # within the readiness bound, so it can say why
            raise ConnectionError("not connected")

    return check


def postgres_check(engine: Any) -> Check:
    """The database answers a query (a pooled connection, or a new one)."""
    from sqlalchemy import text

    async def check() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    return check


async def readiness(checks: Mapping[str, Check], timeout: float = CHECK_TIMEOUT_SECONDS) -> tuple[bool, dict[str, str]]:
    """Run every check at once, each bounded by `timeout`; (all passed, name -> "ok" or what failed)."""

    async def one(check: Check) -> str:
        try:
            await asyncio.wait_for(check(), timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means not ready; the reason is reported
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return "ok"

    names = list(checks)
    results = await asyncio.gather(*(one(checks[name]) for name in names))
    report = dict(zip(names, results, strict=True))
    return all(result == "ok" for result in results), report


async def serve_health(
    service: str,
    port: int,
    ready: Callable[[], bool],
    host: str = "127.0.0.1",
    checks: Mapping[str, Check] | None = None,
    metrics: Callable[[], Awaitable[str]] | None = None,
) -> asyncio.Server | None:
    """`/healthz` answers 200 while `ready()` holds; `/readyz` 200 while it holds and every check passes; else 503.
    With ``metrics``, `/metrics` answers its text (Prometheus exposition format).

    ``checks`` is read at each request, so a service may add checks once the connections they test exist.
    Port 0 means no endpoint.
    """
    if not port:
        return None
    dependencies: Mapping[str, Check] = checks if checks is not None else {}

    async def answer(path: bytes) -> tuple[int, dict[str, Any]]:
        if path == b"/healthz":
            ok = ready()
            return (200 if ok else 503), {"status": "ok" if ok else "unavailable", "service": service}
        if path == b"/readyz":
            live = ready()
            ok, report = await readiness(dependencies) if live else (False, {})
            report = {"process": "ok" if live else "starting or stopping", **report}
            return (200 if ok else 503), {"status": "ready" if ok else "unavailable", "service": service,
                                          "checks": report}
        return 404, {"status": "not found", "service": service}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            path = (request_line.split(b" ")[1:2] or [b""])[0].split(b"?")[0]
            if path == b"/metrics" and metrics is not None:
                text = (await metrics()).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                    + f"Content-Length: {len(text)}\r\nConnection: close\r\n\r\n".encode() + text
                )
                await writer.drain()
                return
            code, payload = await answer(path)
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[code]
            body = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
