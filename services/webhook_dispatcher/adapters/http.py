"""POSTing webhook bodies with httpx, only to destinations webhooks may reach (`libs.netguard`).

Redirects are not followed (as on Replicate), proxies from the environment are ignored, and the address check
happens where the connection is opened, on the addresses the host resolved to (no DNS rebinding).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import httpx

from libs.netguard import DestinationRefused, GuardedTransport, Network
from services.webhook_dispatcher.ports import AttemptResult

USER_AGENT = "cogwheel-webhooks/1"


class HttpxWebhookClient:
    def __init__(self, timeout: float = 10.0, allowed: Iterable[Network] = ()) -> None:
        # httpx's timeout bounds each read or write; a receiver trickling its answer could outlast it. The
        # whole request is also bounded, so an attempt never outlives the sender's lease.
        self._timeout = timeout
        self._client = httpx.AsyncClient(
            timeout=timeout, follow_redirects=False, trust_env=False,
            transport=GuardedTransport(allowed, purpose="webhooks"),
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
