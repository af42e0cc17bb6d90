"""Registers the built-in models on a fresh stack: the ``cogwheel`` organization, its API token, ``examples/*``.

Re-running is cheap: a model directory whose package is already a version is only hashed, never inspected
or uploaded again.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nats

from libs.modelpkg import PushedPackage, push_model_dir
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import RpcAlreadyExists, RpcNotFound, RpcPermissionDenied, RpcUnauthenticated, create_channel

__all__ = ["EXAMPLES", "MODEL", "OWNER", "SeedResult", "default_model_dir", "examples_dir", "seed"]

OWNER = "cogwheel"
MODEL = "hello-world"
# Every example pushed by `cogwheel up`, with its model description.
EXAMPLES: dict[str, str] = {
    "hello-world": "Says hello to its input text.",
    "text-embeddings": "all-MiniLM-L6-v2 sentence embeddings: 384-dimensional vectors for texts.",
    "text-generator": "A small character-level language model trained on Shakespeare's sonnets; streams its text.",
    "image-generator": "A fixed-weight CPPN that paints a PNG from a seed.",
}


@dataclass(frozen=True)
class SeedResult:
    token: str
    token_id: str
    version_id: str
    # model name -> version id of every example pushed.
    versions: dict[str, str] = field(default_factory=dict)


def examples_dir() -> Path:
    """``examples/`` of the source tree, or of the working directory when installed elsewhere."""
    beside = Path(__file__).resolve().parents[1] / "examples"
    return beside if beside.is_dir() else Path.cwd() / "examples"


def default_model_dir() -> Path:
    return examples_dir() / MODEL


async def seed(
    registry_addr: str,
    nats_url: str,
    model_dir: Path | None = None,
    token: str = "",
    token_id: str = "",
    examples: Sequence[str] = (MODEL,),
) -> SeedResult:
    """Idempotently create the seed account, token, and a model with a version per example.

    Args:
        registry_addr: gRPC target of the registry.
        nats_url: JetStream server holding the ``cogwheel-versions`` object store.
        model_dir: directory to push as ``cogwheel/hello-world`` (``examples/hello-world`` by default).
        token, token_id: a token from an earlier run; reused when the registry still accepts it.
        examples: names from ``EXAMPLES`` to push as ``cogwheel/<name>`` (hello-world only by default).
    """
    channel = create_channel(registry_addr, default_timeout=30.0)
    nc = await nats.connect(nats_url)
    versions: dict[str, str] = {}
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await registry.EnsureAccount(pb.EnsureAccountRequest(username=OWNER, type="organization", name="Cogwheel"))
        token, token_id = await _valid_token(registry, token, token_id)
        for name in examples:
            directory = model_dir if name == MODEL and model_dir is not None else examples_dir() / name
            await _ensure_model(registry, name, EXAMPLES.get(name, ""))
            versions[name] = await _push_version(registry, nc, name, directory)
    finally:
        await nc.close()
        await channel.close()
    return SeedResult(token=token, token_id=token_id, version_id=versions.get(MODEL, ""), versions=versions)


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


async def _ensure_model(registry: registry_pb2_grpc.RegistryServiceStub, name: str, description: str) -> None:
    try:
        await registry.GetModel(pb.GetModelRequest(owner=OWNER, name=name))
        return
    except RpcNotFound:
        pass
    request = pb.CreateModelRequest(
        owner=OWNER, name=name, visibility="public", hardware="cpu", description=description
    )
    try:
        await registry.CreateModel(request)
    except RpcAlreadyExists:
        pass


async def _push_version(
    registry: registry_pb2_grpc.RegistryServiceStub, nc: nats.NATS, name: str, model_dir: Path
) -> str:
    listed = await registry.ListVersions(pb.ListVersionsRequest(owner=OWNER, name=name))
    known = {version.id for version in listed.versions}
    pushed = await push_model_dir(nc.jetstream(), model_dir, known=known)
    if pushed.version_id in known:
        return pushed.version_id
    try:
        await registry.CreateVersion(version_request(OWNER, name, pushed))
    except RpcAlreadyExists:
        pass
    return pushed.version_id


def version_request(owner: str, name: str, pushed: PushedPackage) -> pb.CreateVersionRequest:
    return pb.CreateVersionRequest(
        owner=owner, name=name, version_id=pushed.version_id, openapi_schema_json=json.dumps(pushed.openapi_schema),
        cog_version=pushed.cog_version, package_key=pushed.package_key, predictor_ref=pushed.predictor_ref,
        gpu=pushed.gpu, concurrency_max=pushed.concurrency_max,
    )
