"""gRPC edge of the registry: `cogwheel.registry.v1.RegistryService`, translating protobuf to commands and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import grpc

from libs.events import EventMetadata
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc as pb_grpc
from libs.rpc import RpcServer, create_server
from libs.telemetry import current_traceparent
from services.registry import handlers
from services.registry.bootstrap import Deps
from services.registry.domain import commands, errors
from services.registry.domain.accounts import Account
from services.registry.domain.models import Model, Version

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegistryService"].full_name

ERROR_MAP = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.AccountNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.VersionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.TokenNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ModelAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.VersionAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
}


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _account(account: Account) -> pb.Account:
    return pb.Account(
        username=account.username, type=account.type, name=account.name, created_at=_timestamp(account.created_at)
    )


def _model(model: Model) -> pb.Model:
    return pb.Model(
        owner=model.owner,
        name=model.name,
        visibility=model.visibility,
        hardware=model.hardware,
        description=model.description,
        created_at=_timestamp(model.created_at),
        latest_version_id=model.latest_version_id or "",
    )


def _version(version: Version) -> pb.Version:
    return pb.Version(
        id=version.id,
        owner=version.owner,
        name=version.name,
        created_at=_timestamp(version.created_at),
        cog_version=version.cog_version,
        openapi_schema_json=json.dumps(version.openapi_schema),
        package_key=version.package_key,
        predictor_ref=version.predictor_ref,
        hardware=version.hardware,
        concurrency_max=version.concurrency_max,
    )


def _openapi_schema(raw: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        schema = json.loads(raw)
    except ValueError as exc:
        raise errors.InvalidRequest(f"openapi_schema_json is not valid JSON: {exc}") from None
    if not isinstance(schema, dict):
        raise errors.InvalidRequest("openapi_schema_json must be a JSON object")
    return schema


def _metadata() -> EventMetadata:
    return EventMetadata(traceparent=current_traceparent())


class RegistryServicer(pb_grpc.RegistryServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self.deps = deps

    async def EnsureAccount(self, request: pb.EnsureAccountRequest, context: Any) -> pb.Account:
        cmd = commands.EnsureAccount(username=request.username, type=request.type, name=request.name)
        return _account(await handlers.ensure_account(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def CreateToken(self, request: pb.CreateTokenRequest, context: Any) -> pb.CreateTokenResponse:
        cmd = commands.CreateToken(username=request.username, name=request.name)
        issued = await handlers.create_token(cmd, self.deps.uow, self.deps.clock, _metadata())
        return pb.CreateTokenResponse(token=issued.token, token_id=issued.token_id)

    async def AuthenticateToken(
        self, request: pb.AuthenticateTokenRequest, context: Any
    ) -> pb.AuthenticateTokenResponse:
        account, token_id = await handlers.authenticate_token(request.token, self.deps.views)
        return pb.AuthenticateTokenResponse(account=_account(account), token_id=token_id)

    async def CreateModel(self, request: pb.CreateModelRequest, context: Any) -> pb.Model:
        cmd = commands.CreateModel(
            owner=request.owner,
            name=request.name,
            visibility=request.visibility,
            hardware=request.hardware,
            description=request.description,
        )
        return _model(await handlers.create_model(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def GetModel(self, request: pb.GetModelRequest, context: Any) -> pb.Model:
        return _model(await handlers.get_model(request.owner, request.name, self.deps.views))

    async def CreateVersion(self, request: pb.CreateVersionRequest, context: Any) -> pb.Version:
        cmd = commands.CreateVersion(
            owner=request.owner,
            name=request.name,
            version_id=request.version_id,
            openapi_schema=_openapi_schema(request.openapi_schema_json),
            cog_version=request.cog_version,
            package_key=request.package_key,
            predictor_ref=request.predictor_ref,
            gpu=request.gpu,
            concurrency_max=request.concurrency_max,
        )
        return _version(await handlers.create_version(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def GetVersion(self, request: pb.GetVersionRequest, context: Any) -> pb.Version:
        return _version(await handlers.get_version(request.version_id, self.deps.views))

    async def ListVersions(self, request: pb.ListVersionsRequest, context: Any) -> pb.ListVersionsResponse:
        versions = await handlers.list_versions(request.owner, request.name, self.deps.views)
        return pb.ListVersionsResponse(versions=[_version(v) for v in versions])


def create_rpc_server(deps: Deps, port: int, host: str = "0.0.0.0") -> RpcServer:
    """The registry's gRPC server (not started); start it with `await server.start([SERVICE_NAME])`."""
    server = create_server(port, host, error_map=ERROR_MAP)
    pb_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(deps), server.server)
    return server
