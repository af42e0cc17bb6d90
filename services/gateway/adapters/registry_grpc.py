"""Registry calls over gRPC: token authentication (briefly cached), accounts, tokens, models and versions."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from faststream.nats import NatsBroker
from faststream.nats.annotations import NatsMessage

from libs.bus.subjects import (
    REGISTRY_MEMBERSHIP_EVENTS,
    REGISTRY_MODEL_DELETED,
    REGISTRY_TOKEN_EVENTS,
    REGISTRY_VERSION_DELETED,
)
from libs.events import Envelope
from libs.modelpkg import PushedPackage
from libs.pb.cogwheel.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.rpc import RpcUnauthenticated, failover_options_for

log = logging.getLogger(__name__)

MAX_CACHED_TOKENS = 10_000

# Several registries may stand side by side (`cogwheel up --registries N`): spread calls, retry reads elsewhere.
REGISTRY_FAILOVER = failover_options_for(registry_pb2.DESCRIPTOR.services_by_name["RegistryService"])


@dataclass(frozen=True)
class Account:
    """The authenticated caller: the token's account, the organizations it belongs to, and which token it used."""

    username: str
    type: str
    name: str
    organizations: tuple[str, ...] = ()
    admin: bool = False
    token_id: str = ""


def account_view(message: registry_pb2.Account) -> dict[str, Any]:
    return {
        "username": message.username,
        "type": message.type,
        "name": message.name,
        "created_at": message.created_at,
        "admin": message.admin,
        "members": list(message.members),
        "organizations": list(message.organizations),
    }


def token_view(message: registry_pb2.TokenInfo) -> dict[str, Any]:
    return {
        "id": message.id,
        "account": message.username,
        "name": message.name,
        "created_at": message.created_at,
        "status": message.status,
    }


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
        "latest_version": version_view(message.latest_version) if message.HasField("latest_version") else None,
        "github_url": message.github_url or None,
        "paper_url": message.paper_url or None,
        "license_url": message.license_url or None,
        "cover_image_url": message.cover_image_url or None,
        "weights_url": message.weights_url or None,
        "readme": message.readme,
    }


def file_view(message: registry_pb2.File) -> dict[str, Any]:
    return {
        "id": message.id,
        "owner": message.owner,
        "name": message.name,
        "content_type": message.content_type,
        "size": message.size,
        "sha256": message.sha256,
        "md5": message.md5,
        "metadata": json.loads(message.metadata_json or "{}"),
        "created_at": message.created_at,
        "expires_at": message.expires_at,
    }


def deployment_view(message: registry_pb2.Deployment) -> dict[str, Any]:
    """Replicate's deployment object."""
    release = message.current_release
    creator = release.created_by
    created_by: dict[str, Any] = {"type": creator.type or "user", "username": creator.username,
                                  "name": creator.name or creator.username}
    return {
        "owner": message.owner,
        "name": message.name,
        "current_release": {
            "number": release.number,
            "model": release.model,
            "version": release.version,
            "created_at": release.created_at,
            "created_by": created_by,
            "configuration": {
                "hardware": release.hardware,
                "min_instances": release.min_instances,
                "max_instances": release.max_instances,
            },
        },
    }


def collection_view(message: registry_pb2.Collection) -> dict[str, Any]:
    return {
        "slug": message.slug,
        "name": message.name,
        "description": message.description,
        "full_description": message.full_description or None,
        "models": list(message.models),
    }


def _event_data(message: NatsMessage) -> dict[str, Any] | None:
    """The data of a registry event (published by the registry's outbox), or None for a malformed one."""
    try:
        return Envelope.from_json(message.body).data
    except ValueError:
        log.warning("ignoring a malformed registry event on %s", message.raw_message.subject)
        return None


def _token_key(token: str) -> str:
    # The cache holds digests, so a heap dump of a gateway does not hand out usable tokens.
    return hashlib.sha256(token.encode()).hexdigest()


class _Expiring:
    """Registry answers kept for `ttl` seconds (at most 1000; past that the cache starts over), each forgettable
    at once when the registry says it is gone."""

    def __init__(self, ttl: float = 30.0) -> None:
        self._ttl = ttl
        self._entries: dict[Any, tuple[float, dict[str, Any]]] = {}

    async def get(self, key: Any, fetch: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        now = time.monotonic()
        cached = self._entries.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        value = await fetch()
        if len(self._entries) > 1000:
            self._entries.clear()
        self._entries[key] = (now + self._ttl, value)
        return value

    def forget(self, key: Any) -> None:
        self._entries.pop(key, None)

    def __contains__(self, key: Any) -> bool:
        return key in self._entries


class GrpcRegistryClient:
    def __init__(self, channel: grpc.aio.Channel, auth_cache_seconds: float = 30.0) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._auth_cache: dict[str, tuple[float, Account | None]] = {}
        self._auth_ttl = auth_cache_seconds
        self._versions = _Expiring()
        self._models = _Expiring()

    async def authenticate(self, token: str) -> Account | None:
        now = time.monotonic()
        key = _token_key(token)
        cached = self._auth_cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        try:
            reply = await self._stub.AuthenticateToken(registry_pb2.AuthenticateTokenRequest(token=token))
            account: Account | None = Account(
                username=reply.account.username,
                type=reply.account.type,
                name=reply.account.name,
                organizations=tuple(reply.account.organizations),
                admin=reply.account.admin,
                token_id=reply.token_id,
            )
        except RpcUnauthenticated:
            account = None
        if len(self._auth_cache) > MAX_CACHED_TOKENS:
            self._auth_cache.clear()
        self._auth_cache[key] = (now + self._auth_ttl, account)
        return account

    def known_account(self, token: str) -> Account | None:
        """The account of a token authenticated moments ago (from the cache only; never a registry call)."""
        cached = self._auth_cache.get(_token_key(token))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        return None

    def forget(self, *, token_id: str | None = None, username: str | None = None) -> None:
        """Drop cached authentications a registry change made stale; refusals are dropped too, being cheap."""
        self._auth_cache = {
            key: (expires, account)
            for key, (expires, account) in self._auth_cache.items()
            if account is not None and account.token_id != token_id and account.username != username
        }

    def watch_auth_changes(self, broker: NatsBroker) -> None:
        """Forget cached authentications as soon as a token or membership changes, on every gateway.

        Two core NATS subscriptions on ``broker`` (started by the caller), no queue group, so every gateway
        hears every change; no durable: a gateway that misses a message still forgets within the cache TTL.
        The registry publishes these events through JetStream, whose publish is a request: ``no_reply`` keeps
        FastStream from answering it in place of the stream.
        """

        @broker.subscriber(REGISTRY_TOKEN_EVENTS, no_reply=True, title="gateway-forget-token")
        async def on_token_event(message: NatsMessage) -> None:
            data = _event_data(message)
            if data is not None:
                self.forget(token_id=str(data.get("token_id", "")))

        @broker.subscriber(REGISTRY_MEMBERSHIP_EVENTS, no_reply=True, title="gateway-forget-member")
        async def on_membership_event(message: NatsMessage) -> None:
            data = _event_data(message)
            if data is not None:
                self.forget(username=str(data.get("member", "")))

        # Cached versions too (`get_version_cached`): a deleted one is forgotten at once, not after its TTL.
        @broker.subscriber(REGISTRY_VERSION_DELETED, no_reply=True, title="gateway-forget-version")
        async def on_version_deleted(message: NatsMessage) -> None:
            data = _event_data(message)
            if data is not None:
                self.forget_version(str(data.get("id", "")))

        @broker.subscriber(REGISTRY_MODEL_DELETED, no_reply=True, title="gateway-forget-model")
        async def on_model_deleted(message: NatsMessage) -> None:
            data = _event_data(message)
            if data is not None:
                self.forget_model(str(data.get("owner", "")), str(data.get("name", "")))

    async def get_model(self, owner: str, name: str) -> dict[str, Any]:
        return model_view(await self._stub.GetModel(registry_pb2.GetModelRequest(owner=owner, name=name)))

    async def get_model_cached(self, owner: str, name: str) -> dict[str, Any]:
        """For what never changes about a model while it exists, its owner and visibility (a PATCH changes only
        its details): the rest of a cached copy may be up to 30 s old. A deleted model is forgotten at once."""
        return await self._models.get((owner, name), lambda: self.get_model(owner, name))

    def forget_model(self, owner: str, name: str) -> None:
        self._models.forget((owner, name))

    async def get_version(self, version_id: str) -> dict[str, Any]:
        return version_view(await self._stub.GetVersion(registry_pb2.GetVersionRequest(version_id=version_id)))

    async def get_version_cached(self, version_id: str) -> dict[str, Any]:
        """Versions never change (only disappear): a copy up to 30 s old serves. A deleted one is forgotten at once."""
        return await self._versions.get(version_id, lambda: self.get_version(version_id))

    def forget_version(self, version_id: str) -> None:
        self._versions.forget(version_id)

    async def list_versions(self, owner: str, name: str) -> list[dict[str, Any]]:
        reply = await self._stub.ListVersions(registry_pb2.ListVersionsRequest(owner=owner, name=name))
        return [version_view(version) for version in reply.versions]

    # Accounts and tokens (admin and self-service routes).

    async def ensure_account(self, username: str, type: str, name: str, admin: bool = False) -> dict[str, Any]:
        request = registry_pb2.EnsureAccountRequest(username=username, type=type, name=name, admin=admin)
        return account_view(await self._stub.EnsureAccount(request))

    async def get_account(self, username: str) -> dict[str, Any]:
        return account_view(await self._stub.GetAccount(registry_pb2.GetAccountRequest(username=username)))

    async def list_accounts(self) -> list[dict[str, Any]]:
        reply = await self._stub.ListAccounts(registry_pb2.ListAccountsRequest())
        return [account_view(account) for account in reply.accounts]

    async def add_member(self, organization: str, member: str) -> dict[str, Any]:
        request = registry_pb2.MembershipRequest(organization=organization, member=member)
        reply = await self._stub.AddMember(request)
        self.forget(username=member)
        return account_view(reply)

    async def remove_member(self, organization: str, member: str) -> dict[str, Any]:
        request = registry_pb2.MembershipRequest(organization=organization, member=member)
        reply = await self._stub.RemoveMember(request)
        self.forget(username=member)
        return account_view(reply)

    async def create_token(self, username: str, name: str) -> dict[str, Any]:
        reply = await self._stub.CreateToken(registry_pb2.CreateTokenRequest(username=username, name=name))
        return {**token_view(reply.info), "token": reply.token}

    async def list_tokens(self, username: str) -> list[dict[str, Any]]:
        reply = await self._stub.ListTokens(registry_pb2.ListTokensRequest(username=username))
        return [token_view(token) for token in reply.tokens]

    async def change_token(self, action: str, token_id: str, username: str = "") -> dict[str, Any]:
        """`action` is disable, enable or revoke; with `username`, a token of another account is not found."""
        rpc = {"disable": self._stub.DisableToken, "enable": self._stub.EnableToken, "revoke": self._stub.RevokeToken}
        reply = await rpc[action](registry_pb2.TokenRequest(token_id=token_id, username=username))
        self.forget(token_id=token_id)
        return token_view(reply)

    async def create_model(self, owner: str, name: str, **fields: str) -> dict[str, Any]:
        request = registry_pb2.CreateModelRequest(owner=owner, name=name, **fields)
        return model_view(await self._stub.CreateModel(request))

    async def update_model(self, owner: str, name: str, changes: dict[str, str]) -> dict[str, Any]:
        request = registry_pb2.UpdateModelRequest(owner=owner, name=name, **changes)
        return model_view(await self._stub.UpdateModel(request))

    async def delete_model(self, owner: str, name: str) -> None:
        await self._stub.DeleteModel(registry_pb2.DeleteModelRequest(owner=owner, name=name))
        self.forget_model(owner, name)  # this gateway at once; the others when `model.deleted` reaches them

    async def list_models(
        self, *, cursor: str = "", limit: int = 0, sort_by: str = "", sort_direction: str = "", query: str = "",
        owners: list[str] | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        reply = await self._stub.ListModels(
            registry_pb2.ListModelsRequest(
                cursor=cursor, limit=limit, sort_by=sort_by, sort_direction=sort_direction, query=query,
                owners=owners or [],
            )
        )
        return [model_view(model) for model in reply.models], reply.next_cursor

    async def delete_version(self, owner: str, name: str, version_id: str) -> None:
        await self._stub.DeleteVersion(
            registry_pb2.DeleteVersionRequest(owner=owner, name=name, version_id=version_id)
        )
        self.forget_version(version_id)  # this gateway at once; the others when `version.deleted` reaches them

    async def create_file(self, **fields: Any) -> dict[str, Any]:
        return file_view(await self._stub.CreateFile(registry_pb2.CreateFileRequest(**fields)))

    async def get_file(self, file_id: str) -> dict[str, Any]:
        return file_view(await self._stub.GetFile(registry_pb2.GetFileRequest(id=file_id)))

    async def list_files(self, owner: str, cursor: str = "") -> tuple[list[dict[str, Any]], str]:
        reply = await self._stub.ListFiles(registry_pb2.ListFilesRequest(owner=owner, cursor=cursor))
        return [file_view(file) for file in reply.files], reply.next_cursor

    async def delete_file(self, file_id: str) -> None:
        await self._stub.DeleteFile(registry_pb2.DeleteFileRequest(id=file_id))

    async def get_collection(self, slug: str) -> dict[str, Any]:
        return collection_view(await self._stub.GetCollection(registry_pb2.GetCollectionRequest(slug=slug)))

    async def list_collections(
        self, *, cursor: str = "", limit: int = 0, query: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        reply = await self._stub.ListCollections(
            registry_pb2.ListCollectionsRequest(cursor=cursor, limit=limit, query=query)
        )
        return [collection_view(c) for c in reply.collections], reply.next_cursor

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

    async def create_deployment(self, **fields: Any) -> dict[str, Any]:
        return deployment_view(await self._stub.CreateDeployment(registry_pb2.CreateDeploymentRequest(**fields)))

    async def get_deployment(self, owner: str, name: str) -> dict[str, Any]:
        reply = await self._stub.GetDeployment(registry_pb2.GetDeploymentRequest(owner=owner, name=name))
        return deployment_view(reply)

    async def list_deployments(self, owners: list[str], cursor: str = "") -> tuple[list[dict[str, Any]], str]:
        reply = await self._stub.ListDeployments(registry_pb2.ListDeploymentsRequest(owners=owners, cursor=cursor))
        return [deployment_view(d) for d in reply.deployments], reply.next_cursor

    async def update_deployment(self, owner: str, name: str, created_by: str, **changes: Any) -> dict[str, Any]:
        request = registry_pb2.UpdateDeploymentRequest(owner=owner, name=name, created_by=created_by, **changes)
        return deployment_view(await self._stub.UpdateDeployment(request))

    async def delete_deployment(self, owner: str, name: str) -> None:
        await self._stub.DeleteDeployment(registry_pb2.DeleteDeploymentRequest(owner=owner, name=name))
