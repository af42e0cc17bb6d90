"""`Prefer: wait` counts from the request's arrival, so a 60 s wait never outlasts the Python client's 60.5 s."""

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.app import create_app
from services.gateway.arrival import ArrivalMiddleware, arrived_at
from services.gateway.routes.predictions import wait_for_prediction
from services.gateway.settings import GatewaySettings
from services.gateway.waiters import Waiter


class _Waiters:
    def __init__(self) -> None:
        self.waiter = Waiter()

    def register(self, prediction_id: str) -> Waiter:
        return self.waiter

    def unregister(self, prediction_id: str, waiter: Waiter) -> None:
        pass


class _Projection:
    async def get(self, prediction_id: str) -> dict[str, Any]:
        return {"id": prediction_id, "status": "processing"}


def _deps() -> Any:
    return SimpleNamespace(waiters=_Waiters(), projection=_Projection())


async def test_the_budget_already_spent_before_the_handler_is_not_granted_again() -> None:
    began = time.monotonic()
    view = await wait_for_prediction(_deps(), {"id": "p1", "status": "starting"}, 2, since=began - 1.8)
    assert view["status"] == "processing"
    assert time.monotonic() - began < 0.5


async def test_without_an_arrival_time_the_budget_starts_now() -> None:
    began = time.monotonic()
    await wait_for_prediction(_deps(), {"id": "p1", "status": "starting"}, 1)
    assert time.monotonic() - began >= 0.95


class _Slow:
    """A middleware that takes its time (authentication, body limits, tracing) before the route runs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await asyncio.sleep(0.3)
        await self.app(scope, receive, send)


def test_the_arrival_is_taken_before_the_middlewares_inside_it_run() -> None:
    async def spent(request: Request) -> JSONResponse:
        return JSONResponse({"spent": time.monotonic() - arrived_at(request)})

    app = ArrivalMiddleware(_Slow(Starlette(routes=[Route("/", spent)])))
    with TestClient(app) as client:
        assert client.get("/").json()["spent"] >= 0.3


def test_the_gateways_arrival_middleware_is_the_outermost() -> None:
    app = create_app(GatewaySettings(nats_url="nats://unused", database_url="postgresql://unused"))
    assert app.user_middleware[0].cls is ArrivalMiddleware
