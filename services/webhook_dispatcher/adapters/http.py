"""POSTing webhook bodies with httpx; redirects are not followed, as on Replicate."""

from __future__ import annotations

import time

import httpx

from services.webhook_dispatcher.ports import AttemptResult

USER_AGENT = "cogwheel-webhooks/1"


class HttpxWebhookClient:
    def __init__(self, timeout: float = 10.0) -> None:
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    async def post(self, url: str, body: bytes) -> AttemptResult:
        started = time.perf_counter()
        try:
            response = await self._client.post(
                url, content=body, headers={"Content-Type": "application/json", "User-Agent": USER_AGENT}
            )
        except Exception as exc:  # noqa: BLE001 - any failure to make the request is a failed attempt
            error = f"{type(exc).__name__}: {exc}"
            return AttemptResult(status_code=None, latency_ms=_since(started), error=error)
        return AttemptResult(status_code=response.status_code, latency_ms=_since(started))

    async def aclose(self) -> None:
        await self._client.aclose()


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
