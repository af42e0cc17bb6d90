"""POSTing webhook bodies with httpx, only to destinations webhooks may reach.

Redirects are not followed (as on Replicate), proxies from the environment are ignored, and the address check
happens where the connection is opened: the host is resolved once, every address it resolves to is checked,
and the connection goes to a checked address. Checking first and letting the client resolve again would let
a DNS answer that changes in between (rebinding) reach an address that was never checked.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from services.webhook_dispatcher.domain.destinations import DestinationRefused, Network, check_addresses
from services.webhook_dispatcher.ports import AttemptResult

USER_AGENT = "cogwheel-webhooks/1"


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allowed: Iterable[Network] = ()) -> None:
        self._allowed = tuple(allowed)
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port, timeout)
        check_addresses(host, addresses, self._allowed)
        last_error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        assert last_error is not None
        raise last_error

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
    except (OSError, TimeoutError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool opening connections through the guarded backend."""

    def __init__(self, allowed: Iterable[Network] = ()) -> None:
        super().__init__()
        # httpx (pinned) builds its pool without a way to pass a network backend; the pool is swapped whole.
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedNetworkBackend(allowed),
        )


class HttpxWebhookClient:
    def __init__(self, timeout: float = 10.0, allowed: Iterable[Network] = ()) -> None:
        # httpx's timeout bounds each read or write; a receiver trickling its answer could outlast it. The
        # whole request is also bounded, so an attempt never outlives the sender's lease.
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False, transport=GuardedTransport(allowed)
        )

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._client.post(
                    url,
                    content=body,
                    headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
                )
        except DestinationRefused as exc:
            return AttemptResult(status_code=None, latency_ms=_since(started), error=f"refused: {exc}", refused=True)
        except Exception as exc:  # noqa: BLE001 - any failure to make the request is a failed attempt
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            refused = isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol)
            return AttemptResult(status_code=None, latency_ms=_since(started), error=error, refused=refused)
        return AttemptResult(status_code=response.status_code, latency_ms=_since(started))

    async def aclose(self) -> None:
        await self._client.aclose()


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
