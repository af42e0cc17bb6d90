"""In-process grpc.aio server and client: health, traceparent propagation, typed errors, deadlines."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from libs.pb.cogwheel.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.rpc import (
    RpcAborted,
    RpcAlreadyExists,
    RpcDeadlineExceeded,
    RpcError,
    RpcInvalidArgument,
    RpcNotFound,
    RpcUnauthenticated,
    create_channel,
    create_server,
)


class ModelNotFound(Exception):
    pass


class ModelAlreadyExists(Exception):
    pass


class ConcurrencyError(RuntimeError):
    pass


class InvalidModelName(ValueError):
    pass


class Unauthenticated(Exception):
    pass


class FakeRegistry(registry_pb2_grpc.RegistryServiceServicer):
    async def GetModel(self, request, context):  # noqa: N802
        errors = {
            "missing": ModelNotFound("model missing/x not found"),
            "dup": ModelAlreadyExists("exists"),
            "race": ConcurrencyError("stream moved"),
            "bad": InvalidModelName("bad name"),
            "anon": Unauthenticated("who are you"),
            "boom": RuntimeError("secret detail"),
        }
        if request.owner in errors:
            raise errors[request.owner]
        if request.owner == "slow":
            await asyncio.sleep(2)
        return registry_pb2.Model(owner=request.owner, name=request.name, visibility="public")


async def finished_span(exporter: InMemorySpanExporter, kind: SpanKind) -> ReadableSpan:
    # The server ends its span after sending an abort status, so the client can see the error first.
    for _ in range(100):
        spans = [s for s in exporter.get_finished_spans() if s.kind == kind]
        if spans:
            return spans[0]
        await asyncio.sleep(0.01)
    raise AssertionError(f"no finished {kind} span")


@dataclass
class Stack:
    stub: registry_pb2_grpc.RegistryServiceStub
    channel: grpc.aio.Channel
    exporter: InMemorySpanExporter
    provider: TracerProvider
    port: int


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rpc = create_server(0, "127.0.0.1", tracer_provider=provider)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(FakeRegistry(), rpc.server)
    await rpc.start(["cogwheel.registry.v1.RegistryService"])
    channel = create_channel(f"127.0.0.1:{rpc.port}", default_timeout=0.5, tracer_provider=provider)
    try:
        yield Stack(registry_pb2_grpc.RegistryServiceStub(channel), channel, exporter, provider, rpc.port)
    finally:
        await channel.close()
        await rpc.stop(0)


async def test_health_check_serving(stack: Stack) -> None:
    health = health_pb2_grpc.HealthStub(stack.channel)
    for service in ("", "cogwheel.registry.v1.RegistryService"):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    assert not [s for s in stack.exporter.get_finished_spans() if "Health" in s.name]


async def test_round_trip_propagates_trace(stack: Stack) -> None:
    tracer = stack.provider.get_tracer("test")
    with tracer.start_as_current_span("caller") as caller:
        model = await stack.stub.GetModel(registry_pb2.GetModelRequest(owner="acme", name="hello"))
    assert (model.owner, model.name) == ("acme", "hello")

    client = await finished_span(stack.exporter, SpanKind.CLIENT)
    server = await finished_span(stack.exporter, SpanKind.SERVER)
    assert client.name == server.name == "rpc cogwheel.registry.v1.RegistryService/GetModel"
    trace_id = caller.get_span_context().trace_id
    assert client.context.trace_id == server.context.trace_id == trace_id
    assert server.parent is not None and server.parent.span_id == client.context.span_id
    assert client.parent is not None and client.parent.span_id == caller.get_span_context().span_id


@pytest.mark.parametrize(
    ("owner", "error", "code"),
    [
        ("missing", RpcNotFound, grpc.StatusCode.NOT_FOUND),
        ("dup", RpcAlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
        ("race", RpcAborted, grpc.StatusCode.ABORTED),
        ("bad", RpcInvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
        ("anon", RpcUnauthenticated, grpc.StatusCode.UNAUTHENTICATED),
        ("boom", RpcError, grpc.StatusCode.INTERNAL),
    ],
)
async def test_domain_errors_become_typed_client_errors(
    stack: Stack, owner: str, error: type[RpcError], code: grpc.StatusCode
) -> None:
    with pytest.raises(error) as caught:
        await stack.stub.GetModel(registry_pb2.GetModelRequest(owner=owner, name="x"))
    assert caught.value.code() == code
    if owner == "missing":
        assert caught.value.details() == "model missing/x not found"
    if owner == "boom":
        assert "secret" not in caught.value.details()
    server = await finished_span(stack.exporter, SpanKind.SERVER)
    assert server.attributes["rpc.grpc.status_code"] == code.value[0]


async def test_default_deadline_applies(stack: Stack) -> None:
    with pytest.raises(RpcDeadlineExceeded):
        await stack.stub.GetModel(registry_pb2.GetModelRequest(owner="slow", name="x"))


async def test_explicit_timeout_overrides_default(stack: Stack) -> None:
    with pytest.raises(RpcDeadlineExceeded):
        await stack.stub.GetModel(registry_pb2.GetModelRequest(owner="slow", name="x"), timeout=0.1)


async def test_unreachable_peer_is_unavailable() -> None:
    channel = create_channel("127.0.0.1:1", default_timeout=2.0)
    try:
        with pytest.raises(RpcError) as caught:
            await registry_pb2_grpc.RegistryServiceStub(channel).GetModel(registry_pb2.GetModelRequest())
        assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        await channel.close()
