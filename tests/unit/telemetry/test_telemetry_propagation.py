"""traceparent helpers and tracer provider setup."""

import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libs.telemetry import (
    build_provider,
    current_traceparent,
    extract_context,
    inject_headers,
    start_span_from_traceparent,
    traces_url,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_no_active_span_has_no_traceparent() -> None:
    assert current_traceparent() is None
    assert inject_headers({}) == {}


def test_traceparent_of_active_span(provider) -> None:
    tracer_provider, _ = provider
    with tracer_provider.get_tracer("t").start_as_current_span("s") as span:
        ctx = span.get_span_context()
        expected = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"
        assert current_traceparent() == expected
        assert inject_headers({"x": "1"}) == {"x": "1", "traceparent": expected}


def test_extract_context_ignores_header_case() -> None:
    ctx = extract_context({"Traceparent": TRACEPARENT})
    assert f"{trace.get_current_span(ctx).get_span_context().trace_id:032x}" == TRACE_ID
    assert not trace.get_current_span(extract_context(None)).get_span_context().is_valid


def test_start_span_from_traceparent_continues_trace(provider) -> None:
    tracer_provider, exporter = provider
    with start_span_from_traceparent("handle job", TRACEPARENT, provider=tracer_provider) as span:
        assert current_traceparent().split("-")[1] == TRACE_ID
        assert span.is_recording()
    (finished,) = exporter.get_finished_spans()
    assert finished.name == "handle job" and finished.kind == SpanKind.CONSUMER
    assert f"{finished.context.trace_id:032x}" == TRACE_ID
    assert f"{finished.parent.span_id:016x}" == "00f067aa0ba902b7"


def test_start_span_without_traceparent(provider) -> None:
    tracer_provider, exporter = provider
    with tracer_provider.get_tracer("t").start_as_current_span("outer") as outer:
        with start_span_from_traceparent("inner", None, provider=tracer_provider):
            pass
    with start_span_from_traceparent("garbage", "not-a-traceparent", provider=tracer_provider):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["inner"].context.trace_id == outer.get_span_context().trace_id
    assert spans["garbage"].parent is None


def test_traces_url() -> None:
    assert traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    assert traces_url("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"


def test_build_provider_exports_only_with_endpoint() -> None:
    plain = build_provider("registry", None)
    assert plain.resource.attributes["service.name"] == "registry"
    assert plain._active_span_processor._span_processors == ()
    exporting = build_provider("registry", "http://127.0.0.1:4318")
    (processor,) = exporting._active_span_processor._span_processors
    assert isinstance(processor, BatchSpanProcessor)
    exporting.shutdown()


def test_setup_installs_global_provider_once() -> None:
    # A subprocess keeps the one-per-process global provider out of this test session.
    code = (
        "from opentelemetry import trace\n"
        "from libs.telemetry import setup\n"
        "p = setup('gateway', 'http://127.0.0.1:9')\n"
        "assert trace.get_tracer_provider() is p\n"
        "assert setup('other', None) is p\n"
        "assert p.resource.attributes['service.name'] == 'gateway'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_without_an_exporter_nothing_is_recorded_and_a_callers_trace_still_propagates() -> None:
    code = (
        "from opentelemetry import context, trace\n"
        "from libs.telemetry import setup, current_traceparent, extract_context\n"
        "assert setup('gateway', None) is None\n"
        "incoming = '00-' + 'a' * 32 + '-' + 'b' * 16 + '-01'\n"
        "token = context.attach(extract_context({'traceparent': incoming}))\n"
        "with trace.get_tracer('t').start_as_current_span('s') as span:\n"
        "    assert not span.is_recording()\n"
        "    assert current_traceparent() == incoming\n"
        "context.detach(token)\n"
        "with trace.get_tracer('t').start_as_current_span('s'):\n"
        "    assert current_traceparent() is None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
