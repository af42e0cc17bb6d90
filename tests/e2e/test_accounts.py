"""Accounts, organizations, tokens and rate limits through the real services and the `cogwheel` CLI."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from typer.testing import CliRunner

from cogwheel.admin import ensure_admin
from cogwheel.cli import app as cli_app
from cogwheel.seed import default_model_dir
from cogwheel.stack import Stack
from libs.db.engine import libpq_url
from libs.infra import free_port
from libs.modelpkg import push_model_dir
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import create_channel
from libs.testing.polling import wait_until


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
async def admin_token(platform) -> str:
    return (await ensure_admin(platform.stack.registry_addr)).token


def cli(platform, admin_token: str, *args: str) -> tuple[int, str]:
    env = {"COGWHEEL_URL": platform.stack.base_url, "COGWHEEL_ADMIN_TOKEN": admin_token}
    result = CliRunner().invoke(cli_app, list(args), env=env)
    return result.exit_code, result.output


async def run_cli(platform, admin_token: str, *args: str) -> str:
    code, output = await asyncio.to_thread(cli, platform, admin_token, *args)
    assert code == 0, output
    return output


async def new_user_with_token_id(platform, admin_token: str, username: str) -> tuple[str, str]:
    """Create a user and a token through the CLI; returns the token's secret and id."""
    await run_cli(platform, admin_token, "account", "create", username)
    output = await run_cli(platform, admin_token, "token", "create", "--account", username, "--name", "e2e")
    lines = output.strip().splitlines()
    return lines[-1], lines[0].split()[1]


async def new_user(platform, admin_token: str, username: str) -> str:
    return (await new_user_with_token_id(platform, admin_token, username))[0]


async def recorded_account(platform, prediction_id: str) -> str | None:
    async with await psycopg.AsyncConnection.connect(libpq_url(platform.database_url)) as conn:
        cursor = await conn.execute("SELECT account FROM gateway.predictions WHERE id = %s", (prediction_id,))
        row = await cursor.fetchone()
    return row[0] if row else None


async def push_private(platform, owner: str, name: str, tmp_path: Path) -> str:
    """A private copy of hello-world (an extra file makes its content, hence its version id, new)."""
    model_dir = tmp_path / name
    shutil.copytree(default_model_dir(), model_dir)
    (model_dir / "marker.txt").write_text(uuid.uuid4().hex)
    channel = create_channel(platform.stack.registry_addr, default_timeout=30)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await registry.CreateModel(pb.CreateModelRequest(owner=owner, name=name, visibility="private", hardware="cpu"))
        nc = await nats.connect(platform.nats_url)
        try:
            pushed = await push_model_dir(nc.jetstream(), model_dir)
        finally:
            await nc.close()
        await registry.CreateVersion(
            pb.CreateVersionRequest(
                owner=owner, name=name, version_id=pushed.version_id,
                openapi_schema_json=json.dumps(pushed.openapi_schema), cog_version=pushed.cog_version,
                package_key=pushed.package_key, predictor_ref=pushed.predictor_ref,
            )
        )
        return pushed.version_id
    finally:
        await channel.close()


async def test_admin_endpoints_refuse_other_tokens(platform, admin_token: str) -> None:
    async with httpx.AsyncClient(base_url=platform.stack.base_url) as client:
        as_user = await client.get("/v1/admin/accounts", headers=platform.headers)
        create = await client.post("/v1/admin/accounts", json={"username": "x"}, headers=platform.headers)
        anonymous = await client.get("/v1/admin/accounts")
        as_admin = await client.get("/v1/admin/accounts", headers=bearer(admin_token))
    assert (as_user.status_code, create.status_code, anonymous.status_code) == (403, 403, 401)
    assert as_user.headers["content-type"].startswith("application/problem+json")
    assert as_admin.status_code == 200
    assert {"admin", "cogwheel"} <= {a["username"] for a in as_admin.json()["results"]}


async def test_predictions_are_isolated_between_accounts(platform, admin_token: str) -> None:
    alice, bob = unique("alice"), unique("bob")
    alice_token, bob_token = await new_user(platform, admin_token, alice), await new_user(platform, admin_token, bob)
    async with httpx.AsyncClient(base_url=platform.stack.base_url, timeout=70) as client:
        created = await client.post(
            "/v1/models/cogwheel/hello-world/predictions", json={"input": {"text": "mine"}},
            headers={**bearer(alice_token), "Prefer": "wait"},
        )
        assert created.status_code == 201, created.text
        prediction_id = created.json()["id"]
        assert created.json()["output"] == "hello mine"

        own = await client.get(f"/v1/predictions/{prediction_id}", headers=bearer(alice_token))
        assert own.status_code == 200
        for method, path in (
            ("GET", f"/v1/predictions/{prediction_id}"),
            ("GET", f"/v1/predictions/{prediction_id}/events"),
            ("POST", f"/v1/predictions/{prediction_id}/cancel"),
        ):
            other = await client.request(method, path, headers=bearer(bob_token))
            assert other.status_code == 404, (path, other.text)
            assert "hello mine" not in other.text and "mine" not in other.text
        alice_list = (await client.get("/v1/predictions", headers=bearer(alice_token))).json()["results"]
        bob_list = (await client.get("/v1/predictions", headers=bearer(bob_token))).json()["results"]
    assert [p["id"] for p in alice_list] == [prediction_id]
    assert bob_list == []
    assert await recorded_account(platform, prediction_id) == alice


async def test_organization_members_share_private_models_and_predictions(
    platform, admin_token: str, tmp_path: Path
) -> None:
    org, member, outsider = unique("acme"), unique("member"), unique("outsider")
    member_token = await new_user(platform, admin_token, member)
    outsider_token = await new_user(platform, admin_token, outsider)
    shown = await run_cli(platform, admin_token, "account", "create", org, "--org", "--member", member)
    assert member in shown and "organization" in shown
    org_token = (await run_cli(platform, admin_token, "token", "create", "--account", org)).strip().splitlines()[-1]
    version = await push_private(platform, org, "secret", tmp_path)

    async with httpx.AsyncClient(base_url=platform.stack.base_url, timeout=70) as client:
        wait = {"Prefer": "wait"}
        by_org = await client.post(
            "/v1/predictions",
            json={"version": version, "input": {"text": "org"}},
            headers={**bearer(org_token), **wait},
        )
        assert by_org.status_code == 201, by_org.text
        assert by_org.json()["output"] == "hello org"
        org_prediction = by_org.json()["id"]
        assert await recorded_account(platform, org_prediction) == org

        # A member sees and uses the organization's private model and predictions.
        assert (await client.get(f"/v1/models/{org}/secret", headers=bearer(member_token))).status_code == 200
        seen = await client.get(f"/v1/predictions/{org_prediction}", headers=bearer(member_token))
        assert seen.status_code == 200 and seen.json()["output"] == "hello org"
        by_member = await client.post(
            f"/v1/models/{org}/secret/predictions", json={"input": {"text": "member"}},
            headers={**bearer(member_token), **wait},
        )
        assert by_member.status_code == 201 and by_member.json()["output"] == "hello member"
        assert await recorded_account(platform, by_member.json()["id"]) == member

        # Anyone else gets nothing: not the model, not its predictions, not a run of it.
        outsider_headers = bearer(outsider_token)
        assert (await client.get(f"/v1/models/{org}/secret", headers=outsider_headers)).status_code == 404
        assert (await client.get(f"/v1/predictions/{org_prediction}", headers=outsider_headers)).status_code == 404
        by_model = await client.post(
            f"/v1/models/{org}/secret/predictions", json={"input": {"text": "x"}}, headers=outsider_headers
        )
        by_version = await client.post(
            "/v1/predictions", json={"version": version, "input": {"text": "x"}}, headers=outsider_headers
        )
        assert by_model.status_code == 404
        assert by_version.status_code == 422 and by_version.json()["title"] == "Invalid version or not permitted"

        # Leaving the organization ends the sharing at once.
        await run_cli(platform, admin_token, "account", "remove-member", org, member)
        after = await client.get(f"/v1/predictions/{org_prediction}", headers=bearer(member_token))
        assert after.status_code == 404


async def test_disabled_and_revoked_tokens_are_refused_on_every_gateway(platform, admin_token: str) -> None:
    user = unique("carol")
    token, token_id = await new_user_with_token_id(platform, admin_token, user)
    listed = await run_cli(platform, admin_token, "token", "list", "--account", user)
    assert token_id in listed and "active" in listed and token not in listed
    second_gateway = f"http://127.0.0.1:{platform.stack.processes['gateway-2'].env['COGWHEEL_PORT']}"

    async with httpx.AsyncClient(base_url=platform.stack.base_url) as first, httpx.AsyncClient(
        base_url=second_gateway
    ) as second:
        assert (await first.get("/v1/account", headers=bearer(token))).status_code == 200
        assert (await second.get("/v1/account", headers=bearer(token))).status_code == 200  # now cached there

        async def refused_by_second() -> bool:
            return (await second.get("/v1/account", headers=bearer(token))).status_code == 401

        assert "disabled" in await run_cli(platform, admin_token, "token", "disable", token_id)
        disabled = await first.get("/v1/account", headers=bearer(token))
        assert disabled.status_code == 401 and disabled.json()["title"] == "Unauthenticated"
        # The other gateway hears of it over NATS well before its 30 s cache would expire.
        await wait_until(refused_by_second, timeout=10)

        await run_cli(platform, admin_token, "token", "enable", token_id)
        assert (await first.get("/v1/account", headers=bearer(token))).status_code == 200

        assert "revoked" in await run_cli(platform, admin_token, "token", "revoke", token_id)
        assert (await first.get("/v1/account", headers=bearer(token))).status_code == 401
        await wait_until(refused_by_second, timeout=10)
    code, output = await asyncio.to_thread(cli, platform, admin_token, "token", "enable", token_id)
    assert code == 1 and "revoked" in output


async def test_accounts_manage_their_own_tokens(platform, admin_token: str) -> None:
    dave, erin = unique("dave"), unique("erin")
    dave_token, erin_token = await new_user(platform, admin_token, dave), await new_user(platform, admin_token, erin)
    async with httpx.AsyncClient(base_url=platform.stack.base_url) as client:
        created = await client.post("/v1/tokens", json={"name": "laptop"}, headers=bearer(dave_token))
        assert created.status_code == 201
        new = created.json()
        assert new["token"].startswith("cwk_")
        assert (new["account"], new["name"], new["status"]) == (dave, "laptop", "active")
        listed = (await client.get("/v1/tokens", headers=bearer(dave_token))).json()["results"]
        assert [t["name"] for t in listed] == ["e2e", "laptop"] and all("token" not in t for t in listed)

        stolen = await client.delete(f"/v1/tokens/{new['id']}", headers=bearer(erin_token))
        assert stolen.status_code == 404
        assert (await client.get("/v1/account", headers=bearer(new["token"]))).json()["username"] == dave

        revoked = await client.delete(f"/v1/tokens/{new['id']}", headers=bearer(dave_token))
        assert revoked.status_code == 204
        assert (await client.get("/v1/account", headers=bearer(new["token"]))).status_code == 401


@pytest.fixture(scope="module")
async def limited_gateway(platform, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """One more gateway on the same services, allowing one prediction creation and two other requests per minute."""
    stack = Stack(
        platform.nats_url,
        platform.database_url,
        tmp_path_factory.mktemp("limited"),
        gateway_port=free_port(),
        services=["gateway"],
        notify=lambda line: None,
        extra_env={
            "COGWHEEL_REGISTRY_ADDR": platform.stack.registry_addr,
            "COGWHEEL_SCHEDULER_ADDR": platform.stack.scheduler_addr,
            "COGWHEEL_RATE_LIMIT_PREDICTIONS_PER_MINUTE": "1",
            "COGWHEEL_RATE_LIMIT_PREDICTIONS_BURST": "1",
            "COGWHEEL_RATE_LIMIT_REQUESTS_PER_MINUTE": "2",
            "COGWHEEL_RATE_LIMIT_REQUESTS_BURST": "2",
        },
    )
    await stack.start(timeout=60)
    try:
        yield stack.base_url
    finally:
        await stack.stop()


async def test_past_the_rate_limit_requests_get_429(platform, limited_gateway: str) -> None:
    async with httpx.AsyncClient(base_url=limited_gateway, headers=platform.headers, timeout=30) as client:
        body = {"version": platform.hello_version, "input": {"text": "limited"}}
        first = await client.post("/v1/predictions", json=body)
        second = await client.post("/v1/predictions", json=body)
        reads = [await client.get(f"/v1/predictions/{first.json()['id']}") for _ in range(3)]
    assert first.status_code == 201, first.text
    assert second.status_code == 429
    assert second.headers["content-type"].startswith("application/problem+json")
    assert 1 <= int(second.headers["retry-after"]) <= 60
    assert second.json()["detail"].startswith("Request was throttled.")
    assert [r.status_code for r in reads] == [200, 200, 429]
    assert int(reads[2].headers["retry-after"]) >= 1
