"""Two registries side by side (`cogwheel up --registries 2`): a client keeps being answered when one dies."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cogwheel.stack import Stack
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc as pb_grpc
from libs.rpc import create_channel
from services.gateway.adapters.registry_grpc import REGISTRY_FAILOVER


@pytest.fixture
async def registries(tmp_path: Path, database_url: str, nats_url: str) -> AsyncIterator[Stack]:
    stack = Stack(
        nats_url, database_url, tmp_path, replicas={"registry": 2}, services=["registry"], notify=lambda _: None
    )
    await stack.start(timeout=120)
    yield stack
    await stack.stop()


async def test_reads_keep_being_answered_while_one_of_two_registries_is_down(registries: Stack) -> None:
    assert registries.names("registry") == ["registry-1", "registry-2"]
    channel = create_channel(registries.registry_addr, options=REGISTRY_FAILOVER, default_timeout=5.0)
    stub = pb_grpc.RegistryServiceStub(channel)
    username = f"failover-{uuid.uuid4().hex[:8]}"
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=username))
    try:
        for _ in range(20):  # both replicas in use before the kill
            assert (await stub.GetAccount(pb.GetAccountRequest(username=username))).username == username

        # Readers keep calls in flight while registry-1 is SIGKILLed under them.
        failures: list[str] = []
        answered = 0
        stop_at = time.monotonic() + 4.0

        async def reader() -> None:
            nonlocal answered
            while time.monotonic() < stop_at:
                try:
                    reply = await stub.GetAccount(pb.GetAccountRequest(username=username))
                    assert reply.username == username
                    answered += 1
                except Exception as exc:  # noqa: BLE001 - each failure is what the test counts
                    failures.append(repr(exc))

        readers = [asyncio.create_task(reader()) for _ in range(8)]
        await asyncio.sleep(1.0)
        await registries.kill("registry-1", restart=False)
        await asyncio.gather(*readers)
        assert failures == []
        assert answered > 100
    finally:
        await channel.close()
