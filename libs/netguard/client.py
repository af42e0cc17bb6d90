"""httpx plumbing that connects only to vetted addresses, and a GET that follows redirects one checked hop at a time.

The address check happens where the connection is opened: the host is resolved once, every address it
resolves to is checked, and the connection goes to a checked address. Checking first and letting the client
resolve again would let a DNS answer that changes in between (rebinding) reach an address never checked.
Proxies from the environment are ignored (a proxy would make the check meaningless).
"""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import httpcore
import httpx

from libs.netguard.addresses import DestinationRefused, Network, check_addresses

MAX_REDIRECTS = 5


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allowed: Iterable[Network] = (), *, purpose: str = "requests") -> None:
        self._allowed = tuple(allowed)
        self._purpose = purpose
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
        check_addresses(host, addresses, self._allowed, purpose=self._purpose)
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

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("unix sockets may not be reached")

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

    def __init__(self, allowed: Iterable[Network] = (), *, purpose: str = "requests") -> None:
        super().__init__()
        # httpx (pinned) builds its pool without a way to pass a network backend; the pool is swapped whole.
        self._pool = httpcore.AsyncConnectionPool(
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=GuardedNetworkBackend(allowed, purpose=purpose),
        )


def guarded_client(
    allowed: Iterable[Network] = (), *, timeout: float = 10.0, purpose: str = "requests"
) -> httpx.AsyncClient:
    """An httpx client that never follows redirects by itself and reaches only vetted addresses."""
    return httpx.AsyncClient(
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        transport=GuardedTransport(allowed, purpose=purpose),
    )


def check_url(url: str | httpx.URL) -> httpx.URL:
    """Only http(s) URLs without credentials: a `user:pass@` URL would be sent as Basic auth."""
    try:
        parsed = httpx.URL(str(url))
    except httpx.InvalidURL as exc:
        raise DestinationRefused(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise DestinationRefused(f"only http and https URLs may be fetched, not {parsed.scheme or 'none'}")
    if not parsed.host:
        raise DestinationRefused("the URL has no host")
    if urllib.parse.urlsplit(str(url)).username is not None or parsed.userinfo:
        raise DestinationRefused("URLs with credentials (user:password@) are not accepted")
    return parsed


@asynccontextmanager
async def guarded_get(
    client: httpx.AsyncClient, url: str, *, headers: dict[str, str] | None = None, max_redirects: int = MAX_REDIRECTS
) -> AsyncIterator[httpx.Response]:
    """GET ``url`` as a streamed response, following at most ``max_redirects`` redirects, each target checked
    like the first URL (and connected to only through the client's guarded transport)."""
    target = check_url(url)
    for _ in range(max_redirects + 1):
        request = client.build_request("GET", target, headers=headers)
        response = await client.send(request, stream=True)
        if not response.is_redirect:
            try:
                yield response
            finally:
                await response.aclose()
            return
        location = response.headers.get("location", "")
        await response.aclose()
        target = check_url(target.join(location))
    raise DestinationRefused(f"more than {max_redirects} redirects")
