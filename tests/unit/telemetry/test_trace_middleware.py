"""TraceMiddleware opens a server span per HTTP request, continuing the caller's traceparent."""

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libs.telemetry import TraceMiddleware, current_traceparent

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def traced_app() -> tuple[httpx.AsyncClient, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = FastAPI()

    @app.get("/v1/predictions/{prediction_id}")
    async def get_prediction(prediction_id: str) -> dict:
        return {"id": prediction_id, "traceparent": current_traceparent()}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("boom")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "traceparent": current_traceparent()}

    app.add_middleware(TraceMiddleware, tracer_provider=provider)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test"), exporter


async def test_continues_incoming_trace(traced_app) -> None:
    client, exporter = traced_app
    async with client:
        body = (await client.get("/v1/predictions/abc", headers={"traceparent": TRACEPARENT})).json()
    assert body["id"] == "abc"
    assert body["traceparent"].split("-")[1] == TRACE_ID
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.SERVER
    assert span.name == "GET /v1/predictions/{prediction_id}"
    assert f"{span.context.trace_id:032x}" == TRACE_ID
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["http.route"] == "/v1/predictions/{prediction_id}"


async def test_new_trace_without_header_and_errors_recorded(traced_app) -> None:
    client, exporter = traced_app
    async with client:
        body = (await client.get("/v1/predictions/x")).json()
        assert body["traceparent"] is not None
        assert (await client.get("/boom")).status_code == 500
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["GET /v1/predictions/{prediction_id}"].parent is None
    assert not spans["GET /boom"].status.is_ok


async def test_health_probes_are_not_traced(traced_app) -> None:
    client, exporter = traced_app
    async with client:
        body = (await client.get("/healthz")).json()
    assert body["traceparent"] is None
    assert exporter.get_finished_spans() == ()


async def test_without_a_recording_provider_only_the_callers_context_passes_on() -> None:
    # No tracer provider given and none installed globally (no exporter): no span is opened, yet a handler sees
    # the caller's traceparent, and none when the caller sent none.
    app = FastAPI()

    @app.get("/v1/predictions/{prediction_id}")
    async def get_prediction(prediction_id: str) -> dict:
        return {"traceparent": current_traceparent()}

    app.add_middleware(TraceMiddleware)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
    given = await client.get("/v1/predictions/p1", headers={"traceparent": TRACEPARENT})
    assert given.json()["traceparent"] == TRACEPARENT
    assert (await client.get("/v1/predictions/p1")).json()["traceparent"] is None
