"""``settle``: once it returns, the server has seen every subscription the connection made before it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from libs.bus.nats import settle


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.close()


def record_writes(client: Client) -> list[bytes]:
    """The protocol lines ``client`` hands its socket, in order."""
    written: list[bytes] = []
    transport = client._transport  # noqa: SLF001 - watching the wire is the point of this test
    write, writelines = transport.write, transport.writelines

    def write_one(data: bytes) -> None:
        written.append(bytes(data))
        write(data)

    def write_many(chunks: list[bytes]) -> None:
        written.extend(bytes(chunk) for chunk in chunks)
        writelines(chunks)

    transport.write, transport.writelines = write_one, write_many  # type: ignore[method-assign]
    return written


async def ignore(msg: Msg) -> None:
    return None


async def test_the_ping_follows_the_subscription_on_the_wire(nc: Client) -> None:
    written = record_writes(nc)
    await nc.subscribe("settle.probe", cb=ignore)
    await settle(nc)
    sub = next(i for i, line in enumerate(written) if line.startswith(b"SUB settle.probe"))
    last_ping = max(i for i, line in enumerate(written) if line == b"PING\r\n")
    assert last_ping > sub, written


async def test_a_request_from_another_connection_finds_the_responder(nc: Client, nats_url: str) -> None:
    async def answer(msg: Msg) -> None:
        await msg.respond(b"here")

    other = await nats.connect(nats_url)
    try:
        for round_ in range(20):
            subscription = await nc.subscribe(f"settle.responder.{round_}", cb=answer)
            await settle(nc)
            reply = await other.request(f"settle.responder.{round_}", b"", timeout=5)
            assert reply.data == b"here"
            await subscription.unsubscribe()
    finally:
        await other.close()
