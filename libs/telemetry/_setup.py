"""Process-wide OpenTelemetry tracer provider and W3C propagator setup."""

from __future__ import annotations

import logging

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

TRACES_PATH = "/v1/traces"


def traces_url(otlp_endpoint: str) -> str:
    """Turn an OTLP base endpoint (as in OTEL_EXPORTER_OTLP_ENDPOINT) into the HTTP traces URL."""
    base = otlp_endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def build_provider(service_name: str, otlp_endpoint: str | None = None) -> TracerProvider:
    """A tracer provider for ``service_name`` that exports over OTLP/HTTP only when an endpoint is given."""
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    if otlp_endpoint:
        # Imported lazily: the exporter pulls in requests, which processes without a collector never need.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        url = traces_url(otlp_endpoint)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
        log.info("exporting traces to %s", url)
    return provider


def setup(service_name: str, otlp_endpoint: str | None = None) -> TracerProvider | None:
    """Install the W3C TraceContext propagator and, when traces go somewhere, the global SDK tracer provider.

    With ``otlp_endpoint`` (settings map it from ``OTEL_EXPORTER_OTLP_ENDPOINT``) spans are recorded and exported
    over OTLP/HTTP; call ``provider.shutdown()`` on exit to flush. Without it no SDK provider is installed: the
    API's own tracer records nothing, yet each span it opens carries its parent's context, so a caller's
    ``traceparent`` still reaches the events, jobs and calls that follow, at no cost per request.

    OpenTelemetry allows one global provider per process, so a second call returns the provider
    installed by the first and leaves it unchanged.

    Args:
        service_name: Value of the ``service.name`` resource attribute.
        otlp_endpoint: OTLP/HTTP base URL such as ``http://127.0.0.1:4318``, or None for no export.

    Returns:
        The global SDK tracer provider, or None when traces are not exported.
    """
    propagate.set_global_textmap(TraceContextTextMapPropagator())
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    if not otlp_endpoint:
        return None
    provider = build_provider(service_name, otlp_endpoint)
    trace.set_tracer_provider(provider)
    return provider
