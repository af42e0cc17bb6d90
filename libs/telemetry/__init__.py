"""OpenTelemetry setup and W3C trace-context propagation helpers."""

from libs.telemetry._asgi import TraceMiddleware
from libs.telemetry._propagation import (
    TRACEPARENT,
    current_traceparent,
    extract_context,
    inject_headers,
    start_span_from_traceparent,
    tracer,
)
from libs.telemetry._setup import build_provider, setup, traces_url

__all__ = [
    "TRACEPARENT",
    "TraceMiddleware",
    "build_provider",
    "current_traceparent",
    "extract_context",
    "inject_headers",
    "setup",
    "start_span_from_traceparent",
    "tracer",
    "traces_url",
]
