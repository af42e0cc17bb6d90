"""When a request arrived: `Prefer: wait` budgets count from then, not from when the handler began.

The official Python client reads for at most 60.5 s; a 60 s wait measured after authentication, body parsing
and the scheduler call would overrun it. The middleware is the outermost one, so the time is taken as soon as
the server hands the request over.
"""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send


class ArrivalMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["arrived_at"] = time.monotonic()
        await self.app(scope, receive, send)


def arrived_at(request: Request) -> float:
    """``time.monotonic()`` at the request's arrival (now, for a request that bypassed the middleware)."""
    return float(getattr(request.state, "arrived_at", time.monotonic()))
