"""Pure-ASGI middleware that continues incoming W3C trace context in a server span per request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from libs.telemetry._propagation import extract_context, tracer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}


def _route_template(scope: Scope) -> str | None:
    # Starlette/FastAPI put the matched route in the scope; its template keeps span names low-cardinality.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None


class TraceMiddleware:
    """Open a SERVER span for every HTTP request, parented on its ``traceparent`` header.

    Usable as ``app.add_middleware(TraceMiddleware)`` or by wrapping any ASGI app. Paths in
    ``excluded_paths`` (health probes by default) are passed through untraced.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        excluded_paths: frozenset[str] | set[str] = frozenset({"/healthz"}),
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.app = app
        self.excluded_paths = frozenset(excluded_paths)
        self.tracer_provider = tracer_provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        if self.tracer_provider is None and not isinstance(trace.get_tracer_provider(), SdkTracerProvider):
            # Nothing records spans (no exporter): only a caller's trace context is passed on, if it sent one.
            await self._continue_callers_trace(scope, receive, send)
            return
        method = scope.get("method", "GET")
        path = scope.get("path", "")
        attributes = {"http.request.method": method, "url.path": path, "url.scheme": scope.get("scheme", "http")}
        status_code: list[int] = []

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_code.append(int(message["status"]))
            await send(message)

        with tracer(self.tracer_provider).start_as_current_span(
            f"{method} {path}",
            context=extract_context(_headers(scope)),
            kind=SpanKind.SERVER,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            try:
                await self.app(scope, receive, send_wrapper)
            finally:
                template = _route_template(scope)
                if template:
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                if status_code:
                    span.set_attribute("http.response.status_code", status_code[0])
                    if status_code[0] >= 500:
                        span.set_status(Status(StatusCode.ERROR))

    async def _continue_callers_trace(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not any(name == b"traceparent" for name, _ in scope.get("headers") or ()):
            await self.app(scope, receive, send)
            return
        token = otel_context.attach(extract_context(_headers(scope)))
        try:
            await self.app(scope, receive, send)
        finally:
            otel_context.detach(token)
