"""The gateway's FastStream subscribers forget cached authentications when the registry says a token or a
membership changed, on a ``cogwheel up``-style NATS (per-service users and permissions)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage
from opentelemetry import trace

from cogwheel.credentials import Credentials
from cogwheel.provision import provision_nats
from cogwheel.servers import with_user
from libs.bus.broker import create_broker, start_broker, stop_broker
from libs.bus.nats import Bus, connect
from libs.bus.subjects import REGISTRY_EVENTS, event_subject
from libs.events import new_event
from libs.infra import EmbeddedNats
from libs.testing.polling import wait_until
from services.gateway.adapters import registry_grpc
from services.gateway.adapters.registry_grpc import Account, GrpcRegistryClient

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def registry_bus(secured: tuple[EmbeddedNats, Credentials]) -> AsyncIterator[Bus]:
    """Publishes as the registry's outbox relay does: JetStream, as the registry's NATS user."""
    server, credentials = secured
    await provision_nats(with_user(server.url, *credentials.admin_nats()))
    bus = await connect(server.url, name="test-registry", user="registry",
                        password=credentials.nats_passwords["registry"])
    yield bus
    await bus.close()


class _Stub:
    """The registry's AuthenticateToken: token ``t-<user>-<n>`` is token ``<n>`` of account ``<user>``."""

    def __init__(self) -> None:
        self.calls = 0

    async def AuthenticateToken(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        self.calls += 1
        _, username, token_id = request.token.split("-")
        account = SimpleNamespace(username=username, type="user", name=username, organizations=[], admin=False)
        return SimpleNamespace(account=account, token_id=token_id)


Gateway = tuple[GrpcRegistryClient, _Stub, NatsBroker]


@pytest.fixture
async def gateway(secured: tuple[EmbeddedNats, Credentials]) -> AsyncIterator[Gateway]:
    """A registry client whose cache the auth-change subscribers keep, on a broker of the gateway's NATS user."""
    server, credentials = secured
    channel = grpc.aio.insecure_channel("127.0.0.1:9")  # never called: the stub below answers
    client = GrpcRegistryClient(channel, auth_cache_seconds=600)
    stub = _Stub()
    client._stub = stub  # type: ignore[assignment]
    broker = create_broker(server.url, name="test-gateway-auth", user="gateway",
                           password=credentials.nats_passwords["gateway"])
    client.watch_auth_changes(broker)
    await start_broker(broker)
    try:
        yield client, stub, broker
    finally:
        await stop_broker(broker)
        await channel.close()


async def _publish(bus: Bus, event_type: str, data: dict[str, Any]) -> None:
    event = new_event(event_type, f"account-{data.get('username') or data.get('member')}", data)
    await bus.publish(event_subject("registry", event_type), event.to_json(), msg_id=str(event.id))


async def _forgotten(client: GrpcRegistryClient, token: str) -> None:
    async def gone() -> bool:
        return client.known_account(token) is None

    await wait_until(gone, timeout=10)


async def test_a_revoked_token_is_forgotten_at_once(gateway, registry_bus) -> None:
    client, stub, _ = gateway
    assert await client.authenticate("t-alice-1") == Account("alice", "user", "alice", token_id="1")
    await client.authenticate("t-alice-2")
    assert stub.calls == 2
    assert await client.authenticate("t-alice-1") is not None and stub.calls == 2  # cached for 600 s

    await _publish(registry_bus, "token.revoked", {"username": "alice", "token_id": "1"})
    await _forgotten(client, "t-alice-1")
    # Only the revoked token: the account's other token stays cached.
    assert client.known_account("t-alice-2") is not None
    await client.authenticate("t-alice-1")
    assert stub.calls == 3
    # The event went through JetStream like any other: it is in the registry's stream.
    assert (await registry_bus.js.stream_info(REGISTRY_EVENTS.name)).state.messages >= 1


async def test_a_membership_change_forgets_the_member(gateway, registry_bus) -> None:
    client, _, _ = gateway
    await client.authenticate("t-bob-7")
    await client.authenticate("t-carol-8")
    await _publish(registry_bus, "membership.added", {"organization": "acme", "member": "bob"})
    await _forgotten(client, "t-bob-7")
    assert client.known_account("t-carol-8") is not None


async def test_a_malformed_event_is_ignored_and_the_next_one_still_heard(gateway, registry_bus) -> None:
    client, _, _ = gateway
    await client.authenticate("t-dave-3")
    await registry_bus.publish(event_subject("registry", "token.disabled"), b"not an envelope", msg_id="bad-1")
    await asyncio.sleep(0.3)
    assert client.known_account("t-dave-3") is not None
    await _publish(registry_bus, "token.disabled", {"username": "dave", "token_id": "3"})
    await _forgotten(client, "t-dave-3")


async def test_the_subscriber_never_answers_the_publisher(gateway, registry_bus) -> None:
    """A JetStream publish is a request whose answer must come from the stream alone."""
    client, _, _ = gateway
    await client.authenticate("t-erin-4")
    answers: list[bytes] = []

    async def on_answer(msg) -> None:  # type: ignore[no-untyped-def]
        answers.append(msg.data)

    inbox = registry_bus.nc.new_inbox()
    await registry_bus.nc.subscribe(inbox, cb=on_answer)
    event = new_event("token.revoked", "account-erin", {"username": "erin", "token_id": "4"})
    await registry_bus.nc.publish(event_subject("registry", "token.revoked"), event.to_json(), reply=inbox,
                                  headers={"Nats-Msg-Id": str(event.id)})
    await _forgotten(client, "t-erin-4")
    await asyncio.sleep(0.5)
    # Only the stream's acknowledgement came back, none from the gateway.
    assert len(answers) == 1 and b'"stream"' in answers[0], answers


async def test_stopping_the_broker_closes_its_connection(secured) -> None:
    server, credentials = secured
    broker = create_broker(server.url, name="test-gateway-stop", user="gateway",
                           password=credentials.nats_passwords["gateway"])
    GrpcRegistryClient(grpc.aio.insecure_channel("127.0.0.1:9")).watch_auth_changes(broker)
    await start_broker(broker)
    connection = await broker.connect()
    assert connection.is_connected
    # The gateway user's own inbox prefix, which its permissions allow (and no other user's).
    assert connection.new_inbox().startswith("_INBOX_gateway.")
    await stop_broker(broker)
    assert connection.is_closed


async def test_the_broker_continues_the_publisher_trace(secured, registry_bus) -> None:
    """FastStream's OpenTelemetry middleware hands the subscriber the trace of the ``traceparent`` it received."""
    server, credentials = secured
    broker = create_broker(server.url, name="test-gateway-trace", user="gateway",
                           password=credentials.nats_passwords["gateway"])
    seen: list[int] = []

    @broker.subscriber("registry.events.probe.traced", no_reply=True)
    async def on_probe(message: NatsMessage) -> None:
        seen.append(trace.get_current_span().get_span_context().trace_id)

    await start_broker(broker)
    try:
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        await registry_bus.publish("registry.events.probe.traced", b"{}", msg_id="probe-traced",
                                   headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})

        async def heard() -> bool:
            return bool(seen)

        await wait_until(heard, timeout=10)
        assert seen == [int(trace_id, 16)]
    finally:
        await stop_broker(broker)


async def _forgotten_once_deleted(client: GrpcRegistryClient, registry_bus: Bus, cache: Any, cached: Any,
                                  deleted: Any, kept: Any, event_type: str, data: dict[str, Any]) -> list[Any]:
    """Fill `cache` through `cached(key)` for two keys, publish `event_type` for the first as the registry's relay
    does, and wait until it alone is forgotten; returns the keys the registry was asked for."""
    assert (await cached(deleted))["n"] == 1 and (await cached(kept))["n"] == 1
    assert (await cached(deleted))["n"] == 1  # cached
    event = new_event(event_type, "model-alice/hello", {**data, "deleted_at": "2026-01-01T00:00:00Z"})
    await registry_bus.publish(event_subject("registry", event_type), event.to_json(), msg_id=str(event.id))

    async def forgotten() -> bool:
        return deleted not in cache

    await wait_until(forgotten, timeout=10)
    assert kept in cache  # only the deleted one
    assert (await cached(deleted))["n"] == 2  # asked again
    return [deleted, kept, deleted]


async def test_a_deleted_version_is_forgotten_at_once_by_every_gateway(
    gateway, registry_bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stub, _ = gateway
    asked: list[str] = []

    async def get_version(request: Any) -> Any:  # the registry's GetVersion
        asked.append(request.version_id)
        return request

    stub.GetVersion = get_version  # type: ignore[attr-defined]
    # The n-th answer for a version says n: a cached copy keeps saying what it said first.
    monkeypatch.setattr(registry_grpc, "version_view",
                        lambda reply: {"id": reply.version_id, "n": asked.count(reply.version_id)})
    assert asked == await _forgotten_once_deleted(
        client, registry_bus, client._versions, client.get_version_cached, "v1", "v2",
        "version.deleted", {"id": "v1", "owner": "alice", "name": "hello"})


async def test_a_deleted_model_is_forgotten_at_once_by_every_gateway(
    gateway, registry_bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, stub, _ = gateway
    asked: list[tuple[str, str]] = []

    async def get_model(request: Any) -> Any:  # the registry's GetModel
        asked.append((request.owner, request.name))
        return request

    stub.GetModel = get_model  # type: ignore[attr-defined]
    monkeypatch.setattr(registry_grpc, "model_view",
                        lambda reply: {"owner": reply.owner, "n": asked.count((reply.owner, reply.name))})
    assert asked == await _forgotten_once_deleted(
        client, registry_bus, client._models, lambda key: client.get_model_cached(*key), ("alice", "hello"),
        ("alice", "other"), "model.deleted", {"owner": "alice", "name": "hello"})
