"""Organizations, administrators and the token lifecycle through the registry's gRPC edge on real PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from libs.bus.nats import connect
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc as pb_grpc
from libs.rpc import RpcFailedPrecondition, RpcInvalidArgument, RpcNotFound, RpcUnauthenticated, create_channel
from services.registry.bootstrap import Deps, bootstrap, migrate_schema, rebuild_projections
from services.registry.rpc import SERVICE_NAME, create_rpc_server
from services.registry.settings import Settings


@pytest.fixture(scope="module")
async def served(database_url: str, nats_url: str) -> AsyncIterator[tuple[pb_grpc.RegistryServiceStub, Deps]]:
    await migrate_schema(database_url)
    bus = await connect(nats_url, name="registry-accounts-test")
    deps = bootstrap(Settings(database_url=database_url, nats_url=nats_url), bus=bus)
    assert deps.relay is not None
    stop = asyncio.Event()
    relay = asyncio.create_task(deps.relay.run(stop))
    server = create_rpc_server(deps, 0, "127.0.0.1")
    await server.start([SERVICE_NAME])
    channel = create_channel(f"127.0.0.1:{server.port}")
    try:
        yield pb_grpc.RegistryServiceStub(channel), deps
    finally:
        await channel.close()
        await server.stop(grace=1)
        stop.set()
        await relay
        await bus.close()
        await deps.close()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def test_organizations_share_with_their_members(served) -> None:
    stub, _ = served
    org, alice, bob = unique("org"), unique("alice"), unique("bob")
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=org, type="organization", name="Org"))
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=alice))
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=bob))

    joined = await stub.AddMember(pb.MembershipRequest(organization=org, member=alice))
    assert list(joined.members) == [alice]
    await stub.AddMember(pb.MembershipRequest(organization=org, member=bob))
    assert list((await stub.GetAccount(pb.GetAccountRequest(username=org))).members) == [alice, bob]

    issued = await stub.CreateToken(pb.CreateTokenRequest(username=alice, name="laptop"))
    authed = await stub.AuthenticateToken(pb.AuthenticateTokenRequest(token=issued.token))
    assert list(authed.account.organizations) == [org] and not authed.account.admin

    left = await stub.RemoveMember(pb.MembershipRequest(organization=org, member=alice))
    assert list(left.members) == [bob]
    authed = await stub.AuthenticateToken(pb.AuthenticateTokenRequest(token=issued.token))
    assert list(authed.account.organizations) == []

    with pytest.raises(RpcInvalidArgument):
        await stub.AddMember(pb.MembershipRequest(organization=alice, member=bob))
    with pytest.raises(RpcNotFound):
        await stub.AddMember(pb.MembershipRequest(organization=org, member=unique("ghost")))
    with pytest.raises(RpcNotFound):
        await stub.GetAccount(pb.GetAccountRequest(username=unique("ghost")))

    listed = await stub.ListAccounts(pb.ListAccountsRequest())
    names = [a.username for a in listed.accounts]
    assert names == sorted(names) and {org, alice, bob} <= set(names)


async def test_token_lifecycle_and_listing(served) -> None:
    stub, _ = served
    owner = unique("user")
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=owner, admin=True))
    issued = await stub.CreateToken(pb.CreateTokenRequest(username=owner, name="ci"))
    assert (issued.info.id, issued.info.name, issued.info.status, issued.info.username) == (
        issued.token_id, "ci", "active", owner,
    )
    assert (await stub.AuthenticateToken(pb.AuthenticateTokenRequest(token=issued.token))).account.admin

    disabled = await stub.DisableToken(pb.TokenRequest(token_id=issued.token_id))
    assert disabled.status == "disabled"
    with pytest.raises(RpcUnauthenticated):
        await stub.AuthenticateToken(pb.AuthenticateTokenRequest(token=issued.token))
    assert (await stub.EnableToken(pb.TokenRequest(token_id=issued.token_id))).status == "active"
    await stub.AuthenticateToken(pb.AuthenticateTokenRequest(token=issued.token))

    with pytest.raises(RpcNotFound):
        await stub.RevokeToken(pb.TokenRequest(token_id=issued.token_id, username=unique("other")))
    assert (await stub.RevokeToken(pb.TokenRequest(token_id=issued.token_id))).status == "revoked"
    with pytest.raises(RpcUnauthenticated):
        await stub.AuthenticateToken(pb.AuthenticateTokenRequest(token=issued.token))
    with pytest.raises(RpcFailedPrecondition):
        await stub.EnableToken(pb.TokenRequest(token_id=issued.token_id))
    with pytest.raises(RpcNotFound):
        await stub.DisableToken(pb.TokenRequest(token_id="missing"))

    second = await stub.CreateToken(pb.CreateTokenRequest(username=owner))
    listed = await stub.ListTokens(pb.ListTokensRequest(username=owner))
    assert [(t.id, t.status) for t in listed.tokens] == [(issued.token_id, "revoked"), (second.token_id, "active")]
    assert all(second.token not in str(t) for t in listed.tokens)


async def test_rebuild_restores_memberships_and_token_states(served) -> None:
    stub, deps = served
    org, member = unique("org"), unique("member")
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=org, type="organization"))
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=member))
    await stub.AddMember(pb.MembershipRequest(organization=org, member=member))
    revoked = await stub.CreateToken(pb.CreateTokenRequest(username=member))
    await stub.RevokeToken(pb.TokenRequest(token_id=revoked.token_id))
    disabled = await stub.CreateToken(pb.CreateTokenRequest(username=org))
    await stub.DisableToken(pb.TokenRequest(token_id=disabled.token_id))

    async def snapshot() -> dict[str, list[tuple]]:
        async with deps.engine.connect() as conn:
            return {
                "memberships": list(await conn.execute(text("SELECT * FROM registry.memberships ORDER BY 1, 2"))),
                "tokens": list(await conn.execute(text("SELECT * FROM registry.tokens ORDER BY token_id"))),
                "accounts": list(await conn.execute(text("SELECT * FROM registry.accounts ORDER BY username"))),
            }

    before = await snapshot()
    async with deps.engine.begin() as conn:
        await conn.execute(text("DELETE FROM registry.memberships"))
        await conn.execute(text("UPDATE registry.tokens SET disabled_at = NULL, revoked_at = NULL"))
    await rebuild_projections(deps)
    assert await snapshot() == before
