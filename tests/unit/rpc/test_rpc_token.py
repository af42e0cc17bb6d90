"""The installation token on internal gRPC: calls without it (or with a wrong one) are UNAUTHENTICATED."""

from collections.abc import AsyncIterator

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from libs.pb.cogwheel.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.rpc import RpcUnauthenticated, create_channel, create_server

TOKEN = "t0ken-for-tests"


class Registry(registry_pb2_grpc.RegistryServiceServicer):
    calls = 0

    async def GetModel(self, request, context):  # noqa: N802
        Registry.calls += 1
        return registry_pb2.Model(owner=request.owner, name=request.name, visibility="public")


@pytest.fixture
async def address() -> AsyncIterator[str]:
    rpc = create_server(0, "127.0.0.1", token=TOKEN)
    registry_pb2_grpc.add_RegistryServiceServicer_to_server(Registry(), rpc.server)
    await rpc.start(["cogwheel.registry.v1.RegistryService"])
    try:
        yield f"127.0.0.1:{rpc.port}"
    finally:
        await rpc.stop(0)


async def call(address: str, token: str | None) -> registry_pb2.Model:
    channel = create_channel(address, default_timeout=5, token=token)
    try:
        return await registry_pb2_grpc.RegistryServiceStub(channel).GetModel(
            registry_pb2.GetModelRequest(owner="acme", name="hello"))
    finally:
        await channel.close()


async def test_calls_need_the_token(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COGWHEEL_RPC_TOKEN", raising=False)
    before = Registry.calls
    for token in ("", "wrong-token"):
        with pytest.raises(RpcUnauthenticated):
            await call(address, token)
    assert Registry.calls == before  # refused before reaching the handler
    assert (await call(address, TOKEN)).name == "hello"
    assert Registry.calls == before + 1


async def test_the_token_comes_from_the_environment(address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COGWHEEL_RPC_TOKEN", TOKEN)
    assert (await call(address, None)).owner == "acme"
    monkeypatch.setenv("COGWHEEL_RPC_TOKEN", "other")
    with pytest.raises(RpcUnauthenticated):
        await call(address, None)


async def test_health_checks_stay_open(address: str) -> None:
    channel = create_channel(address, default_timeout=5, token="")
    try:
        reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        await channel.close()
