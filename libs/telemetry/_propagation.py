"""W3C traceparent helpers for HTTP headers, NATS headers and stored event metadata."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind
from opentelemetry.util.types import Attributes

TRACEPARENT = "traceparent"
TRACER_NAME = "cogwheel"


def tracer(provider: trace.TracerProvider | None = None) -> trace.Tracer:
    """The tracer used by cogwheel code (from ``provider`` or the global provider)."""
    return trace.get_tracer(TRACER_NAME, tracer_provider=provider)


def inject_headers(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current trace context (``traceparent``, ``tracestate``) into headers and return them."""
    propagate.inject(headers)
    return headers


def current_traceparent() -> str | None:
    """The ``traceparent`` of the active span, or None when no valid span is active."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get(TRACEPARENT)


def extract_context(headers: Mapping[str, str] | None) -> otel_context.Context:
    """Build a context from headers whose keys may use any case; empty headers give a fresh context."""
    carrier = {str(k).lower(): v for k, v in (headers or {}).items()}
    return propagate.extract(carrier)


@contextmanager
def start_span_from_traceparent(
    name: str,
    traceparent: str | None,
    *,
    kind: SpanKind = SpanKind.CONSUMER,
    attributes: Attributes = None,
    provider: trace.TracerProvider | None = None,
) -> Iterator[Span]:
    """Open a current span whose parent is ``traceparent``.

    With no ``traceparent`` the span joins the current context (a new trace when none is active);
    an unparsable one starts a new trace.

    Args:
        name: Span name.
        traceparent: W3C ``traceparent`` value, e.g. from a job payload or event metadata.
        kind: Span kind; CONSUMER fits message handlers.
        attributes: Initial span attributes.
        provider: Tracer provider; the global one when None.

    Yields:
        The started span, which is also the current span inside the block.
    """
    parent = extract_context({TRACEPARENT: traceparent}) if traceparent else None
    with tracer(provider).start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as span:
        yield span
