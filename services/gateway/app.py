"""The FastAPI application: routes, error mapping, tracing, and the background consumers' lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from libs.bus.broker import stop_broker
from libs.eventstore.tracking import keep_tracking_pruned
from libs.runtime import settle_long_lived_objects
from libs.telemetry import TraceMiddleware
from services.gateway import errors
from services.gateway.arrival import ArrivalMiddleware
from services.gateway.auth_failures import FailedAuthThrottle
from services.gateway.bootstrap import Deps, bootstrap
from services.gateway.limits import RequestLimits, RequestLimitsMiddleware
from services.gateway.projection import SCHEMA
from services.gateway.routes import (
    account,
    admin,
    collections,
    files,
    models,
    outputs,
    predictions,
    search,
    stream,
    tokens,
)
from services.gateway.routes import deployments as deployment_routes
from services.gateway.routes import push as push_routes
from services.gateway.routes import webhooks as webhook_routes
from services.gateway.settings import GatewaySettings
from services.gateway.subscribers import consume_prediction_events
from services.gateway.web import routes as web


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        deps: Deps = await bootstrap(settings)
        app.state.deps = deps
        stop = asyncio.Event()
        await deps.waiters.start()
        settle_long_lived_objects()
        consumer = asyncio.create_task(consume_prediction_events(deps.bus, deps.projection, stop))
        pruning = asyncio.create_task(
            keep_tracking_pruned(deps.engine, SCHEMA, settings.tracking_retention_seconds, stop))
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(consumer, pruning, return_exceptions=True)
            await deps.projection.answers_stored()
            await deps.waiters.stop()
            await stop_broker(deps.broker)
            await deps.bus.close()
            await deps.store.close()
            await deps.engine.dispose()

    app = FastAPI(
        title="Cogwheel", version="0.1.0", lifespan=lifespan, openapi_url="/openapi.json", docs_url=None,
        redoc_url=None,
        # TraceMiddleware opens the request's span; FastAPI's own would be a second one for the same request. Its
        # metrics and logs have no provider here, but left on they are looked for on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    errors.install(app)
    app.include_router(predictions.router)
    app.include_router(models.router)
    app.include_router(account.router)
    app.include_router(admin.router)
    app.include_router(tokens.router)
    app.include_router(webhook_routes.router)
    app.include_router(files.router)
    app.include_router(collections.router)
    app.include_router(search.router)
    app.include_router(push_routes.router)
    app.include_router(stream.router)
    app.include_router(outputs.router)
    app.include_router(deployment_routes.router)
    app.add_middleware(
        RequestLimitsMiddleware,
        limits=RequestLimits(
            max_json_body_bytes=settings.max_json_body_bytes,
            max_input_bytes=settings.max_input_bytes,
            body_read_timeout=settings.body_read_timeout,
        ),
    )
    app.state.auth_throttle = FailedAuthThrottle(settings.auth_failure_limit, settings.auth_failure_window_seconds)
    # Pages last: their `/{owner}/{name}` must not shadow an API path.
    app.include_router(web.api)
    app.include_router(web.router)
    app.add_middleware(TraceMiddleware)
    app.add_middleware(ArrivalMiddleware)  # added last: outermost, so it sees the request first
    return app
