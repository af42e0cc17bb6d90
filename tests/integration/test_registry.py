"""The registry over real gRPC, PostgreSQL and NATS JetStream, served in-process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from libs.bus.nats import Bus, connect
from libs.events import Envelope
from libs.infra import free_port
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc as pb_grpc
from libs.rpc import (
    RpcAlreadyExists,
    RpcFailedPrecondition,
    RpcInvalidArgument,
    RpcNotFound,
    RpcUnauthenticated,
    create_channel,
)
from services.registry import handlers
from services.registry.bootstrap import Deps, bootstrap, migrate_schema
from services.registry.domain.commands import DisableToken
from services.registry.rpc import SERVICE_NAME, create_rpc_server
from services.registry.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA = {"type": "object", "components": {"schemas": {"Input": {"type": "object"}}}}


@dataclass
class Registry:
    stub: pb_grpc.RegistryServiceStub
    deps: Deps
    bus: Bus


@pytest.fixture(scope="module")
async def registry(database_url: str, nats_url: str) -> AsyncIterator[Registry]:
    await migrate_schema(database_url)
    bus = await connect(nats_url, name="registry-test")
    await bus.ensure_streams()
    deps = bootstrap(Settings(database_url=database_url, nats_url=nats_url), bus=bus)
    assert deps.relay is not None
    stop = asyncio.Event()
    relay = asyncio.create_task(deps.relay.run(stop))
    server = create_rpc_server(deps, 0, "127.0.0.1")
    await server.start([SERVICE_NAME])
    channel = create_channel(f"127.0.0.1:{server.port}")
    try:
        yield Registry(pb_grpc.RegistryServiceStub(channel), deps, bus)
    finally:
        await channel.close()
        await server.stop(grace=1)
        stop.set()
        await relay
        await bus.close()
        await deps.close()


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def given_model(stub: pb_grpc.RegistryServiceStub, hardware: str = "cpu") -> tuple[str, str]:
    owner, name = unique("user"), unique("model")
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=owner, type="user", name="Someone"))
    await stub.CreateModel(pb.CreateModelRequest(owner=owner, name=name, visibility="public", hardware=hardware))
    return owner, name


def version_request(owner: str, name: str, version_id: str) -> pb.CreateVersionRequest:
    return pb.CreateVersionRequest(
        owner=owner,
        name=name,
        version_id=version_id,
        openapi_schema_json=json.dumps(SCHEMA),
        cog_version="0.16.0",
        package_key=version_id,
        predictor_ref="predict.py:Predictor",
    )


async def test_accounts_tokens_models_and_versions(registry: Registry) -> None:
    stub, owner = registry.stub, unique("user")
    account = await stub.EnsureAccount(pb.EnsureAccountRequest(username=owner, type="organization", name="Org"))
    assert (account.username, account.type, account.name) == (owner, "organization", "Org")
    assert account.created_at.endswith("Z")
    assert await stub.EnsureAccount(pb.EnsureAccountRequest(username=owner)) == account

    issued = await stub.CreateToken(pb.CreateTokenRequest(username=owner, name="ci"))
    assert issued.token.startswith("cwk_") and len(issued.token) == 44
    authed = await stub.AuthenticateToken(pb.AuthenticateTokenRequest(token=issued.token))
    assert (authed.account, authed.token_id) == (account, issued.token_id)

    model = await stub.CreateModel(
        pb.CreateModelRequest(owner=owner, name="hello", visibility="private", hardware="gpu-t4", description="hi")
    )
    assert (model.visibility, model.hardware, model.description, model.latest_version_id) == (
        "private",
        "gpu-t4",
        "hi",
        "",
    )
    assert await stub.GetModel(pb.GetModelRequest(owner=owner, name="hello")) == model

    first = await stub.CreateVersion(version_request(owner, "hello", "a" * 64))
    second = await stub.CreateVersion(version_request(owner, "hello", "b" * 64))
    assert first.hardware == "gpu-t4" and json.loads(first.openapi_schema_json) == SCHEMA
    assert await stub.GetVersion(pb.GetVersionRequest(version_id="a" * 64)) == first
    listed = await stub.ListVersions(pb.ListVersionsRequest(owner=owner, name="hello"))
    assert list(listed.versions) == [second, first]
    reloaded = await stub.GetModel(pb.GetModelRequest(owner=owner, name="hello"))
    assert reloaded.latest_version_id == "b" * 64


async def test_errors_carry_the_right_status(registry: Registry) -> None:
    stub = registry.stub
    owner, name = await given_model(stub)
    with pytest.raises(RpcUnauthenticated):
        await stub.AuthenticateToken(pb.AuthenticateTokenRequest(token="cwk_" + "0" * 40))
    with pytest.raises(RpcNotFound):
        await stub.CreateModel(pb.CreateModelRequest(owner=unique("ghost"), name="m"))
    with pytest.raises(RpcNotFound):
        await stub.GetModel(pb.GetModelRequest(owner=owner, name="missing"))
    with pytest.raises(RpcNotFound):
        await stub.GetVersion(pb.GetVersionRequest(version_id="f" * 64))
    with pytest.raises(RpcInvalidArgument):
        await stub.CreateModel(pb.CreateModelRequest(owner=owner, name="Bad Name"))
    with pytest.raises(RpcInvalidArgument):
        await stub.CreateVersion(
            pb.CreateVersionRequest(owner=owner, name=name, version_id="c1", openapi_schema_json="{")
        )
    with pytest.raises(RpcAlreadyExists):
        await stub.CreateModel(pb.CreateModelRequest(owner=owner, name=name))


async def test_disabled_tokens_stop_authenticating(registry: Registry) -> None:
    owner = unique("user")
    await registry.stub.EnsureAccount(pb.EnsureAccountRequest(username=owner))
    issued = await registry.stub.CreateToken(pb.CreateTokenRequest(username=owner))
    deps = registry.deps
    await handlers.disable_token(DisableToken(username=owner, token_id=issued.token_id), deps.uow, deps.clock)
    with pytest.raises(RpcUnauthenticated):
        await registry.stub.AuthenticateToken(pb.AuthenticateTokenRequest(token=issued.token))


async def test_racing_create_model_has_one_winner(registry: Registry) -> None:
    owner, name = unique("user"), unique("model")
    await registry.stub.EnsureAccount(pb.EnsureAccountRequest(username=owner))
    request = pb.CreateModelRequest(owner=owner, name=name, visibility="public", hardware="cpu")
    results = await asyncio.gather(*(registry.stub.CreateModel(request) for _ in range(8)), return_exceptions=True)
    winners = [r for r in results if isinstance(r, pb.Model)]
    assert len(winners) == 1, results
    assert all(isinstance(r, RpcAlreadyExists) for r in results if not isinstance(r, pb.Model)), results


async def test_create_version_is_idempotent_even_when_racing(registry: Registry) -> None:
    owner, name = await given_model(registry.stub)
    request = version_request(owner, name, "d" * 64)
    results = await asyncio.gather(*(registry.stub.CreateVersion(request) for _ in range(6)))
    assert all(r == results[0] for r in results)
    assert await registry.stub.CreateVersion(request) == results[0]
    listed = await registry.stub.ListVersions(pb.ListVersionsRequest(owner=owner, name=name))
    assert [v.id for v in listed.versions] == ["d" * 64]


async def test_a_version_id_belongs_to_one_model(registry: Registry) -> None:
    owner, name = await given_model(registry.stub)
    await registry.stub.CreateModel(pb.CreateModelRequest(owner=owner, name="other"))
    version_id = uuid.uuid4().hex * 2
    await registry.stub.CreateVersion(version_request(owner, name, version_id))
    with pytest.raises(RpcAlreadyExists):
        await registry.stub.CreateVersion(version_request(owner, "other", version_id))


async def test_registry_events_are_published_to_nats(registry: Registry) -> None:
    received: list[tuple[str, Envelope, dict[str, str]]] = []

    async def collect(msg: Any) -> None:
        received.append((msg.subject, Envelope.from_json(msg.data), dict(msg.headers or {})))

    subscription = await registry.bus.nc.subscribe("registry.events.>", cb=collect)
    try:
        owner = unique("user")
        await registry.stub.EnsureAccount(pb.EnsureAccountRequest(username=owner))
        issued = await registry.stub.CreateToken(pb.CreateTokenRequest(username=owner))
        await registry.stub.CreateModel(pb.CreateModelRequest(owner=owner, name="pub"))
        await registry.stub.CreateVersion(version_request(owner, "pub", uuid.uuid4().hex * 2))
        ours = await _wait_for(received, owner, count=4)
    finally:
        await subscription.unsubscribe()
    assert [(subject, env.type) for subject, env, _ in ours] == [
        ("registry.events.account.created", "account.created"),
        ("registry.events.token.created", "token.created"),
        ("registry.events.model.created", "model.created"),
        ("registry.events.version.created", "version.created"),
    ]
    assert [env.stream_id for _, env, _ in ours] == [f"account-{owner}"] * 2 + [f"model-{owner}/pub"] * 2
    assert all(headers.get("Nats-Msg-Id") == env.id for _, env, headers in ours)
    token_event = ours[1][1]
    assert issued.token not in token_event.to_json().decode()
    assert len(token_event.data["token_hash"]) == 64


async def _wait_for(
    received: list[tuple[str, Envelope, dict[str, str]]], owner: str, count: int
) -> list[tuple[str, Envelope, dict[str, str]]]:
    streams = (f"account-{owner}", f"model-{owner}/")
    for _ in range(100):
        ours = [item for item in received if item[1].stream_id.startswith(streams)]
        if len(ours) >= count:
            return ours
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(received)} registry events arrived")


async def _snapshot(deps: Deps) -> dict[str, list[tuple[Any, ...]]]:
    orders = {"accounts": "username", "tokens": "token_id", "models": "owner, name", "versions": "id",
              "files": "id", "collections": "slug", "deployments": "owner, name"}
    async with deps.engine.connect() as conn:
        return {
            table: [tuple(row) for row in await conn.execute(text(f"SELECT * FROM registry.{table} ORDER BY {key}"))]
            for table, key in orders.items()
        }


async def test_model_details_deletion_rules_and_latest_version(registry: Registry) -> None:
    stub = registry.stub
    owner, name = await given_model(stub)
    updated = await stub.UpdateModel(pb.UpdateModelRequest(owner=owner, name=name, description="d",
                                                           github_url="https://github.com/x/y"))
    assert (updated.description, updated.github_url, updated.paper_url) == ("d", "https://github.com/x/y", "")
    with pytest.raises(RpcInvalidArgument):
        await stub.UpdateModel(pb.UpdateModelRequest(owner=owner, name=name, paper_url="not a url"))
    first = await stub.CreateVersion(version_request(owner, name, uuid.uuid4().hex * 2))
    second = await stub.CreateVersion(version_request(owner, name, uuid.uuid4().hex * 2))
    assert (await stub.GetModel(pb.GetModelRequest(owner=owner, name=name))).latest_version == second
    with pytest.raises(RpcFailedPrecondition):
        await stub.DeleteModel(pb.DeleteModelRequest(owner=owner, name=name))
    await stub.DeleteVersion(pb.DeleteVersionRequest(owner=owner, name=name, version_id=second.id))
    with pytest.raises(RpcNotFound):
        await stub.GetVersion(pb.GetVersionRequest(version_id=second.id))
    assert (await stub.GetModel(pb.GetModelRequest(owner=owner, name=name))).latest_version == first
    await stub.DeleteVersion(pb.DeleteVersionRequest(owner=owner, name=name, version_id=first.id))
    assert not (await stub.GetModel(pb.GetModelRequest(owner=owner, name=name))).HasField("latest_version")
    await stub.DeleteModel(pb.DeleteModelRequest(owner=owner, name=name))
    with pytest.raises(RpcNotFound):
        await stub.GetModel(pb.GetModelRequest(owner=owner, name=name))
    await stub.CreateModel(pb.CreateModelRequest(owner=owner, name=name))  # the name is free again


async def test_listing_and_searching_public_models_page_by_page(registry: Registry) -> None:
    stub = registry.stub
    owner = unique("lister")
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=owner))
    for n in range(5):
        await stub.CreateModel(pb.CreateModelRequest(owner=owner, name=f"m{n}", description=f"needle {owner}"))
    await stub.CreateModel(pb.CreateModelRequest(owner=owner, name="hidden", visibility="private",
                                                 description=f"needle {owner}"))
    seen, cursor = [], ""
    while True:
        page = await stub.ListModels(pb.ListModelsRequest(cursor=cursor, limit=2, sort_by="model_created_at",
                                                          sort_direction="desc"))
        seen += [f"{m.owner}/{m.name}" for m in page.models]
        cursor = page.next_cursor
        if not cursor:
            break
    mine = [ref for ref in seen if ref.startswith(f"{owner}/")]
    assert mine == [f"{owner}/m{n}" for n in reversed(range(5))]
    found, cursor = [], ""
    while True:
        page = await stub.ListModels(pb.ListModelsRequest(query=owner, limit=2, cursor=cursor))
        found += [m.name for m in page.models]
        cursor = page.next_cursor
        if not cursor:
            break
    assert sorted(found) == [f"m{n}" for n in range(5)]
    with pytest.raises(RpcInvalidArgument):
        await stub.ListModels(pb.ListModelsRequest(cursor="garbage"))
    # An owner's own listing includes its private models, and nobody else's.
    owned, cursor = [], ""
    while True:
        page = await stub.ListModels(pb.ListModelsRequest(owners=[owner], limit=4, cursor=cursor,
                                                          sort_by="model_created_at"))
        owned += [f"{m.owner}/{m.name}" for m in page.models]
        cursor = page.next_cursor
        if not cursor:
            break
    assert owned == [f"{owner}/hidden", *(f"{owner}/m{n}" for n in reversed(range(5)))]


async def test_a_search_query_with_nul_is_refused_not_failed(registry: Registry) -> None:
    for call in (registry.stub.ListModels(pb.ListModelsRequest(query="a\x00b")),
                 registry.stub.ListCollections(pb.ListCollectionsRequest(query="\x00"))):
        with pytest.raises(RpcInvalidArgument, match="NUL"):
            await call


async def test_files_and_collections(registry: Registry) -> None:
    stub = registry.stub
    owner = unique("uploader")
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=owner))
    ids = [uuid.uuid4().hex for _ in range(3)]
    for file_id in ids:
        created = await stub.CreateFile(pb.CreateFileRequest(id=file_id, owner=owner, name="a.txt", size=3,
                                                             sha256="1" * 64, content_type="text/plain"))
    assert created.expires_at > created.created_at
    with pytest.raises(RpcInvalidArgument):
        await stub.CreateFile(pb.CreateFileRequest(id=ids[0], owner=owner, name="again", size=1, sha256="1" * 64))
    page = await stub.ListFiles(pb.ListFilesRequest(owner=owner, limit=2))
    rest = await stub.ListFiles(pb.ListFilesRequest(owner=owner, limit=2, cursor=page.next_cursor))
    assert [f.id for f in [*page.files, *rest.files]] == list(reversed(ids)) and not rest.next_cursor
    await stub.DeleteFile(pb.DeleteFileRequest(id=ids[0]))
    with pytest.raises(RpcNotFound):
        await stub.GetFile(pb.GetFileRequest(id=ids[0]))
    with pytest.raises(RpcNotFound):
        await stub.DeleteFile(pb.DeleteFileRequest(id=ids[0]))

    slug = unique("col-")
    await stub.PutCollection(pb.PutCollectionRequest(slug=slug, name="First", models=["a/b"]))
    redefined = await stub.PutCollection(pb.PutCollectionRequest(slug=slug, name="Second", models=["c/d", "a/b"]))
    assert await stub.GetCollection(pb.GetCollectionRequest(slug=slug)) == redefined
    assert list(redefined.models) == ["c/d", "a/b"]
    listed = await stub.ListCollections(pb.ListCollectionsRequest(query="Second"))
    assert slug in [c.slug for c in listed.collections]
    with pytest.raises(RpcNotFound):
        await stub.GetCollection(pb.GetCollectionRequest(slug="no-such-collection"))


async def test_rebuild_projections_restores_the_same_read_models(registry: Registry) -> None:
    owner, name = await given_model(registry.stub)
    issued = await registry.stub.CreateToken(pb.CreateTokenRequest(username=owner))
    deps = registry.deps
    await handlers.disable_token(DisableToken(username=owner, token_id=issued.token_id), deps.uow, deps.clock)
    await registry.stub.CreateVersion(version_request(owner, name, uuid.uuid4().hex * 2))
    await registry.stub.UpdateModel(pb.UpdateModelRequest(owner=owner, name=name, readme="# Read me"))
    await registry.stub.CreateFile(pb.CreateFileRequest(id=uuid.uuid4().hex, owner=owner, name="f", size=1,
                                                        sha256="0" * 64, metadata_json='{"a": 1}'))
    await registry.stub.PutCollection(pb.PutCollectionRequest(slug=unique("c"), name="C", models=[f"{owner}/{name}"]))
    version_id = uuid.uuid4().hex * 2
    await registry.stub.CreateVersion(version_request(owner, name, version_id))
    await registry.stub.CreateDeployment(deployment_request(owner, f"{owner}/{name}", version_id, name="kept"))
    await registry.stub.CreateDeployment(deployment_request(owner, f"{owner}/{name}", version_id, name="gone"))
    await registry.stub.UpdateDeployment(pb.UpdateDeploymentRequest(owner=owner, name="kept", max_instances=7))
    await registry.stub.DeleteDeployment(pb.DeleteDeploymentRequest(owner=owner, name="gone"))
    before = await _snapshot(deps)
    assert all(before.values())
    async with deps.engine.begin() as conn:
        await conn.execute(text("DELETE FROM registry.versions"))
        await conn.execute(text("DELETE FROM registry.files"))
        await conn.execute(text("UPDATE registry.deployments SET release_number = 0"))
        await conn.execute(text("UPDATE registry.models SET readme = ''"))
        await conn.execute(text("UPDATE registry.tokens SET disabled_at = NULL"))

    env = {k: v for k, v in os.environ.items() if k != "COGWHEEL_NATS_URL"}
    env["COGWHEEL_DATABASE_URL"] = deps.settings.database_url
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.registry", "rebuild-projections", cwd=REPO_ROOT, env=env
    )
    assert await asyncio.wait_for(process.wait(), timeout=60) == 0
    assert await _snapshot(deps) == before


def deployment_request(owner: str, model: str, version: str, **fields: Any) -> pb.CreateDeploymentRequest:
    defaults: dict[str, Any] = {"name": "app", "hardware": "cpu", "min_instances": 0, "max_instances": 2}
    return pb.CreateDeploymentRequest(owner=owner, model=model, version=version, **{**defaults, **fields})


async def test_deployment_releases_are_recorded_listed_and_published(registry: Registry) -> None:
    stub = registry.stub
    model_owner, model_name = await given_model(stub)
    v1, v2 = uuid.uuid4().hex * 2, uuid.uuid4().hex * 2
    await stub.CreateVersion(version_request(model_owner, model_name, v1))
    await stub.CreateVersion(version_request(model_owner, model_name, v2))
    org, member = unique("org"), unique("user")
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=org, type="organization", name="Org Inc"))
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=member, name="Member"))
    model = f"{model_owner}/{model_name}"

    received: list[Envelope] = []

    async def collect(msg: Any) -> None:
        received.append(Envelope.from_json(msg.data))

    subscription = await registry.bus.nc.subscribe("registry.events.deployment.>", cb=collect)
    try:
        created = await stub.CreateDeployment(
            deployment_request(org, model, v1, name="image-app", hardware="gpu-t4", created_by=member)
        )
        release = created.current_release
        assert (created.owner, created.name, release.number, release.model, release.version) == (
            org, "image-app", 1, model, v1
        )
        assert (release.hardware, release.min_instances, release.max_instances) == ("gpu-t4", 0, 2)
        assert (release.created_by.username, release.created_by.name, release.created_by.type) == (
            member, "Member", "user"
        )
        assert release.created_at.endswith("Z") and created.created_at == release.created_at

        updated = await stub.UpdateDeployment(
            pb.UpdateDeploymentRequest(owner=org, name="image-app", created_by=org, version=v2, min_instances=1)
        )
        assert (updated.current_release.number, updated.current_release.version) == (2, v2)
        assert (updated.current_release.min_instances, updated.current_release.max_instances) == (1, 2)
        assert updated.current_release.created_by.type == "organization"
        assert await stub.GetDeployment(pb.GetDeploymentRequest(owner=org, name="image-app")) == updated

        await stub.CreateDeployment(deployment_request(org, model, v1, name="second"))
        await stub.CreateDeployment(deployment_request(member, model, v1, name="own"))
        page = await stub.ListDeployments(pb.ListDeploymentsRequest(owners=[org], limit=1))
        assert [d.name for d in page.deployments] == ["second"] and page.next_cursor
        rest = await stub.ListDeployments(pb.ListDeploymentsRequest(owners=[org], cursor=page.next_cursor, limit=1))
        assert [d.name for d in rest.deployments] == ["image-app"] and not rest.next_cursor
        both = await stub.ListDeployments(pb.ListDeploymentsRequest(owners=[member, org]))
        assert [f"{d.owner}/{d.name}" for d in both.deployments] == [
            f"{member}/own", f"{org}/second", f"{org}/image-app"
        ]

        await stub.DeleteDeployment(pb.DeleteDeploymentRequest(owner=org, name="image-app"))
        with pytest.raises(RpcNotFound):
            await stub.GetDeployment(pb.GetDeploymentRequest(owner=org, name="image-app"))
        for _ in range(100):
            if len([e for e in received if e.stream_id == f"deployment-{org}/image-app"]) >= 3:
                break
            await asyncio.sleep(0.05)
    finally:
        await subscription.unsubscribe()
    ours = [e for e in received if e.stream_id == f"deployment-{org}/image-app"]
    assert [e.type for e in ours] == ["deployment.created", "deployment.released", "deployment.deleted"]
    assert ours[1].data["number"] == 2 and ours[1].data["created_by"] == org


async def test_deployment_errors_carry_the_right_status(registry: Registry) -> None:
    stub = registry.stub
    owner, name = await given_model(stub)
    version = uuid.uuid4().hex * 2
    await stub.CreateVersion(version_request(owner, name, version))
    model = f"{owner}/{name}"
    await stub.CreateDeployment(deployment_request(owner, model, version))
    with pytest.raises(RpcAlreadyExists):
        await stub.CreateDeployment(deployment_request(owner, model, version))
    with pytest.raises(RpcInvalidArgument, match="hardware must be one of cpu, gpu-t4"):
        await stub.CreateDeployment(deployment_request(owner, model, version, name="x", hardware="gpu-a40"))
    with pytest.raises(RpcInvalidArgument, match="max_instances"):
        await stub.CreateDeployment(deployment_request(owner, model, version, name="x", max_instances=0))
    with pytest.raises(RpcInvalidArgument, match=r"min_instances \(3\) must not be greater"):
        await stub.UpdateDeployment(pb.UpdateDeploymentRequest(owner=owner, name="app", min_instances=3))
    with pytest.raises(RpcInvalidArgument, match="at least one"):
        await stub.UpdateDeployment(pb.UpdateDeploymentRequest(owner=owner, name="app"))
    with pytest.raises(RpcNotFound):
        await stub.CreateDeployment(deployment_request(owner, model, "f" * 64, name="x"))
    with pytest.raises(RpcNotFound):
        await stub.CreateDeployment(deployment_request(unique("nobody"), model, version))
    with pytest.raises(RpcNotFound):
        await stub.UpdateDeployment(pb.UpdateDeploymentRequest(owner=owner, name="missing", max_instances=3))
    with pytest.raises(RpcNotFound):
        await stub.DeleteDeployment(pb.DeleteDeploymentRequest(owner=owner, name="missing"))
    unchanged = await stub.GetDeployment(pb.GetDeploymentRequest(owner=owner, name="app"))
    assert unchanged.current_release.number == 1
    with pytest.raises(RpcFailedPrecondition, match=f"used by deployment.*{owner}/app"):
        await stub.DeleteVersion(pb.DeleteVersionRequest(owner=owner, name=name, version_id=version))


async def test_the_service_process_serves_until_sigterm(database_url: str, nats_url: str) -> None:
    grpc_port, health_port = free_port(), free_port()
    env = {
        **os.environ,
        "COGWHEEL_DATABASE_URL": database_url,
        "COGWHEEL_NATS_URL": nats_url,
        "COGWHEEL_GRPC_PORT": str(grpc_port),
        "COGWHEEL_GRPC_HOST": "127.0.0.1",
        "COGWHEEL_HEALTH_PORT": str(health_port),
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "services.registry", cwd=REPO_ROOT, env=env)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(200):
                try:
                    response = await http.get(f"http://127.0.0.1:{health_port}/healthz")
                    if response.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.returncode is None, "registry exited during startup"
                await asyncio.sleep(0.1)
            assert response.json() == {"status": "ok", "service": "registry"}
        channel = create_channel(f"127.0.0.1:{grpc_port}")
        try:
            owner = unique("proc")
            account = await pb_grpc.RegistryServiceStub(channel).EnsureAccount(pb.EnsureAccountRequest(username=owner))
            assert account.username == owner
        finally:
            await channel.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=20) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_expired_files_lose_their_bytes_and_their_record(registry: Registry) -> None:
    from libs.blobs import FILES_BUCKET, BlobNotFound, delete_blob, get_blob, put_blob

    stub, js = registry.stub, registry.bus.js
    owner = unique("expiring")
    await stub.EnsureAccount(pb.EnsureAccountRequest(username=owner))
    expired, fresh = uuid.uuid4().hex, uuid.uuid4().hex
    for file_id in (expired, fresh):
        await put_blob(js, FILES_BUCKET, file_id, b"bytes", content_type="text/plain", metadata={"account": owner})
        await stub.CreateFile(pb.CreateFileRequest(id=file_id, owner=owner, name="a.txt", size=5,
                                                   sha256="1" * 64, content_type="text/plain"))
    async with registry.deps.engine.begin() as conn:  # as if its 24 hours had passed
        await conn.execute(text("UPDATE registry.files SET expires_at = now() - interval '1 second' WHERE id = :id"),
                           {"id": expired})

    async def delete_bytes(file_id: str) -> None:
        await delete_blob(js, FILES_BUCKET, file_id)

    deps = registry.deps
    purged = await handlers.purge_expired_files(deps.views, deps.uow, deps.clock, delete_bytes)
    assert expired in purged and fresh not in purged
    with pytest.raises(BlobNotFound):
        await get_blob(js, FILES_BUCKET, expired)
    assert (await get_blob(js, FILES_BUCKET, fresh)).data == b"bytes"
    assert expired not in await deps.views.expired_file_ids(limit=1000)
    async with deps.engine.connect() as conn:
        types = (await conn.execute(text("SELECT type FROM registry.events WHERE stream_id = :s ORDER BY position"),
                                    {"s": f"file-{expired}"})).scalars().all()
    assert types == ["file.created", "file.deleted"]
    # A second sweep (another instance, or after a crash) finds nothing left to do.
    assert expired not in await handlers.purge_expired_files(deps.views, deps.uow, deps.clock, delete_bytes)
