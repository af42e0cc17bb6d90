"""Registry calls over gRPC: token authentication (briefly cached) and model/version lookups."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import grpc

from libs.modelpkg import PushedPackage
from libs.pb.cogwheel.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.rpc import RpcUnauthenticated


@dataclass(frozen=True)
class Account:
    username: str
    type: str
    name: str


def version_view(message: registry_pb2.Version) -> dict[str, Any]:
    return {
        "id": message.id,
        "owner": message.owner,
        "name": message.name,
        "created_at": message.created_at,
        "cog_version": message.cog_version,
        "openapi_schema": json.loads(message.openapi_schema_json or "{}"),
    }


def model_view(message: registry_pb2.Model) -> dict[str, Any]:
    return {
        "owner": message.owner,
        "name": message.name,
        "visibility": message.visibility,
        "hardware": message.hardware,
        "description": message.description or None,
        "created_at": message.created_at,
        "latest_version_id": message.latest_version_id or None,
    }


class GrpcRegistryClient:
    def __init__(self, channel: grpc.aio.Channel, auth_cache_seconds: float = 30.0) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._auth_cache: dict[str, tuple[float, Account | None]] = {}
        self._auth_ttl = auth_cache_seconds

    async def authenticate(self, token: str) -> Account | None:
        now = time.monotonic()
        cached = self._auth_cache.get(token)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            reply = await self._stub.AuthenticateToken(registry_pb2.AuthenticateTokenRequest(token=token))
            account: Account | None = Account(reply.account.username, reply.account.type, reply.account.name)
        except RpcUnauthenticated:
            account = None
        if len(self._auth_cache) > 10_000:
            self._auth_cache.clear()
        self._auth_cache[token] = (now + self._auth_ttl, account)
        return account

    async def get_model(self, owner: str, name: str) -> dict[str, Any]:
        return model_view(await self._stub.GetModel(registry_pb2.GetModelRequest(owner=owner, name=name)))

    async def get_version(self, version_id: str) -> dict[str, Any]:
        return version_view(await self._stub.GetVersion(registry_pb2.GetVersionRequest(version_id=version_id)))

    async def list_versions(self, owner: str, name: str) -> list[dict[str, Any]]:
        reply = await self._stub.ListVersions(registry_pb2.ListVersionsRequest(owner=owner, name=name))
        return [version_view(version) for version in reply.versions]

    async def create_model(self, owner: str, name: str, *, visibility: str, hardware: str) -> dict[str, Any]:
        request = registry_pb2.CreateModelRequest(owner=owner, name=name, visibility=visibility, hardware=hardware)
        return model_view(await self._stub.CreateModel(request))

    async def create_version(self, owner: str, name: str, pushed: PushedPackage) -> dict[str, Any]:
        request = registry_pb2.CreateVersionRequest(
            owner=owner,
            name=name,
            version_id=pushed.version_id,
            openapi_schema_json=json.dumps(pushed.openapi_schema),
            cog_version=pushed.cog_version,
            package_key=pushed.package_key,
            predictor_ref=pushed.predictor_ref,
            gpu=pushed.gpu,
            concurrency_max=pushed.concurrency_max,
        )
        reply = await self._stub.CreateVersion(request)
        return version_view(reply) | {"hardware": reply.hardware, "concurrency_max": reply.concurrency_max}
