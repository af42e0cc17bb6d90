"""Registers the built-in model on a fresh stack: the ``cogwheel`` organization, its API token, ``hello-world``."""

import json
from dataclasses import dataclass
from pathlib import Path

import nats

from libs.modelpkg import push_model_dir
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import RpcAlreadyExists, RpcNotFound, RpcPermissionDenied, RpcUnauthenticated, create_channel

__all__ = ["OWNER", "MODEL", "SeedResult", "default_model_dir", "seed"]

OWNER = "cogwheel"
MODEL = "hello-world"


@dataclass(frozen=True)
class SeedResult:
    token: str
    token_id: str
    version_id: str


def default_model_dir() -> Path:
    """``examples/hello-world`` of the source tree, or of the working directory when installed elsewhere."""
    beside = Path(__file__).resolve().parents[1] / "examples" / "hello-world"
    return beside if beside.is_dir() else Path.cwd() / "examples" / "hello-world"


async def seed(
    registry_addr: str, nats_url: str, model_dir: Path | None = None, token: str = "", token_id: str = ""
) -> SeedResult:
    """Idempotently create the seed account, token, model and version.

    Args:
        registry_addr: gRPC target of the registry.
        nats_url: JetStream server holding the ``cogwheel-versions`` object store.
        model_dir: directory to push as the model's version (``examples/hello-world`` by default).
        token, token_id: a token from an earlier run; reused when the registry still accepts it.
    """
    channel = create_channel(registry_addr, default_timeout=30.0)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await registry.EnsureAccount(pb.EnsureAccountRequest(username=OWNER, type="organization", name="Cogwheel"))
        token, token_id = await _valid_token(registry, token, token_id)
        await _ensure_model(registry)
        version_id = await _push_version(registry, nats_url, model_dir or default_model_dir())
    finally:
        await channel.close()
    return SeedResult(token=token, token_id=token_id, version_id=version_id)


async def _valid_token(registry: registry_pb2_grpc.RegistryServiceStub, token: str, token_id: str) -> tuple[str, str]:
    if token:
        try:
            found = await registry.AuthenticateToken(pb.AuthenticateTokenRequest(token=token))
            if found.account.username == OWNER:
                return token, found.token_id or token_id
        except (RpcUnauthenticated, RpcPermissionDenied, RpcNotFound):
            pass  # revoked, or the database was reset: mint a new one
    created = await registry.CreateToken(pb.CreateTokenRequest(username=OWNER, name="default"))
    return created.token, created.token_id


async def _ensure_model(registry: registry_pb2_grpc.RegistryServiceStub) -> None:
    try:
        await registry.GetModel(pb.GetModelRequest(owner=OWNER, name=MODEL))
        return
    except RpcNotFound:
        pass
    request = pb.CreateModelRequest(
        owner=OWNER, name=MODEL, visibility="public", hardware="cpu", description="Says hello to its input text."
    )
    try:
        await registry.CreateModel(request)
    except RpcAlreadyExists:
        pass


async def _push_version(registry: registry_pb2_grpc.RegistryServiceStub, nats_url: str, model_dir: Path) -> str:
    nc = await nats.connect(nats_url)
    try:
        pushed = await push_model_dir(nc.jetstream(), model_dir)
    finally:
        await nc.close()
    try:
        await registry.GetVersion(pb.GetVersionRequest(version_id=pushed.version_id))
        return pushed.version_id
    except RpcNotFound:
        pass
    request = pb.CreateVersionRequest(
        owner=OWNER, name=MODEL, version_id=pushed.version_id, openapi_schema_json=json.dumps(pushed.openapi_schema),
        cog_version=pushed.cog_version, package_key=pushed.package_key, predictor_ref=pushed.predictor_ref,
    )
    try:
        await registry.CreateVersion(request)
    except RpcAlreadyExists:
        pass
    return pushed.version_id
