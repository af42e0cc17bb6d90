"""gRPC edge of the registry: `cogwheel.registry.v1.RegistryService`, translating protobuf to commands and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
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
from services.registry.domain.accounts import Account, Token
from services.registry.domain.collections import Collection
from services.registry.domain.deployments import Deployment
from services.registry.domain.events import MODEL_DETAIL_FIELDS
from services.registry.domain.files import File
from services.registry.domain.models import Model, Version

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["RegistryService"].full_name

ERROR_MAP = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.AccountNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.VersionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.TokenNotFound: grpc.StatusCode.NOT_FOUND,
    errors.TokenRevoked: grpc.StatusCode.FAILED_PRECONDITION,
    errors.ModelAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.VersionAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ModelHasVersions: grpc.StatusCode.FAILED_PRECONDITION,
    errors.FileNotFound: grpc.StatusCode.NOT_FOUND,
    errors.CollectionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.VersionInUse: grpc.StatusCode.FAILED_PRECONDITION,
    errors.DeploymentNotFound: grpc.StatusCode.NOT_FOUND,
    errors.DeploymentAlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
}


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _account(account: Account, organizations: list[str] | None = None) -> pb.Account:
    return pb.Account(
        username=account.username,
        type=account.type,
        name=account.name,
        created_at=_timestamp(account.created_at),
        admin=account.admin,
        members=list(account.members),
        organizations=organizations or [],
    )


def _token_info(token: Token) -> pb.TokenInfo:
    return pb.TokenInfo(
        id=token.id,
        username=token.username,
        name=token.name,
        created_at=_timestamp(token.created_at),
        status=token.status,
    )


def _model(model: Model) -> pb.Model:
    message = pb.Model(
        owner=model.owner,
        name=model.name,
        visibility=model.visibility,
        hardware=model.hardware,
        description=model.description,
        created_at=_timestamp(model.created_at),
        latest_version_id=model.latest_version_id or "",
        github_url=model.github_url,
        paper_url=model.paper_url,
        license_url=model.license_url,
        cover_image_url=model.cover_image_url,
        weights_url=model.weights_url,
        readme=model.readme,
    )
    if model.latest_version is not None:
        message.latest_version.CopyFrom(_version(model.latest_version))
    return message


def _file(file: File) -> pb.File:
    return pb.File(
        id=file.id,
        owner=file.owner,
        name=file.name,
        content_type=file.content_type,
        size=file.size,
        sha256=file.sha256,
        md5=file.md5,
        metadata_json=json.dumps(file.metadata),
        created_at=_timestamp(file.created_at),
        expires_at=_timestamp(file.expires_at),
    )


def _collection(collection: Collection) -> pb.Collection:
    return pb.Collection(
        slug=collection.slug,
        name=collection.name,
        description=collection.description,
        full_description=collection.full_description,
        models=collection.models,
    )


def _json_object(raw: str, field: str) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise errors.InvalidRequest(f"{field} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise errors.InvalidRequest(f"{field} must be a JSON object")
    return value


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

    async def _with_organizations(self, account: Account) -> pb.Account:
        organizations = [] if account.is_organization else await self.deps.views.organizations_of(account.username)
        return _account(account, organizations)

    async def EnsureAccount(self, request: pb.EnsureAccountRequest, context: Any) -> pb.Account:
        cmd = commands.EnsureAccount(
            username=request.username, type=request.type, name=request.name, admin=request.admin
        )
        account = await handlers.ensure_account(cmd, self.deps.uow, self.deps.clock, _metadata())
        return await self._with_organizations(account.model_copy(update={"tokens": ()}))

    async def CreateToken(self, request: pb.CreateTokenRequest, context: Any) -> pb.CreateTokenResponse:
        cmd = commands.CreateToken(username=request.username, name=request.name)
        issued = await handlers.create_token(cmd, self.deps.uow, self.deps.clock, _metadata())
        return pb.CreateTokenResponse(token=issued.token, token_id=issued.token_id, info=_token_info(issued.info))

    async def AuthenticateToken(
        self, request: pb.AuthenticateTokenRequest, context: Any
    ) -> pb.AuthenticateTokenResponse:
        account, token_id = await handlers.authenticate_token(request.token, self.deps.views)
        return pb.AuthenticateTokenResponse(account=await self._with_organizations(account), token_id=token_id)

    async def GetAccount(self, request: pb.GetAccountRequest, context: Any) -> pb.Account:
        return await self._with_organizations(await handlers.get_account(request.username, self.deps.views))

    async def ListAccounts(self, request: pb.ListAccountsRequest, context: Any) -> pb.ListAccountsResponse:
        listed = await self.deps.views.list_accounts()
        return pb.ListAccountsResponse(accounts=[await self._with_organizations(a) for a in listed])

    async def AddMember(self, request: pb.MembershipRequest, context: Any) -> pb.Account:
        cmd = commands.AddMember(organization=request.organization, member=request.member)
        return _account(await handlers.add_member(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def RemoveMember(self, request: pb.MembershipRequest, context: Any) -> pb.Account:
        cmd = commands.RemoveMember(organization=request.organization, member=request.member)
        return _account(await handlers.remove_member(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def ListTokens(self, request: pb.ListTokensRequest, context: Any) -> pb.ListTokensResponse:
        listed = await handlers.list_tokens(request.username, self.deps.views)
        return pb.ListTokensResponse(tokens=[_token_info(t) for t in listed])

    async def DisableToken(self, request: pb.TokenRequest, context: Any) -> pb.TokenInfo:
        cmd = commands.DisableToken(token_id=request.token_id, username=request.username)
        return _token_info(await handlers.disable_token(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def EnableToken(self, request: pb.TokenRequest, context: Any) -> pb.TokenInfo:
        cmd = commands.EnableToken(token_id=request.token_id, username=request.username)
        return _token_info(await handlers.enable_token(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def RevokeToken(self, request: pb.TokenRequest, context: Any) -> pb.TokenInfo:
        cmd = commands.RevokeToken(token_id=request.token_id, username=request.username)
        return _token_info(await handlers.revoke_token(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def CreateModel(self, request: pb.CreateModelRequest, context: Any) -> pb.Model:
        cmd = commands.CreateModel(
            owner=request.owner,
            name=request.name,
            visibility=request.visibility,
            hardware=request.hardware,
            description=request.description,
            github_url=request.github_url,
            paper_url=request.paper_url,
            license_url=request.license_url,
            cover_image_url=request.cover_image_url,
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


    async def UpdateModel(self, request: pb.UpdateModelRequest, context: Any) -> pb.Model:
        changes = {field: getattr(request, field) for field in MODEL_DETAIL_FIELDS if request.HasField(field)}
        cmd = commands.UpdateModel(owner=request.owner, name=request.name, changes=changes)
        await handlers.update_model(cmd, self.deps.uow, self.deps.clock, _metadata())
        return _model(await handlers.get_model(request.owner, request.name, self.deps.views))

    async def DeleteModel(self, request: pb.DeleteModelRequest, context: Any) -> pb.DeleteModelResponse:
        cmd = commands.DeleteModel(owner=request.owner, name=request.name)
        await handlers.delete_model(cmd, self.deps.uow, self.deps.clock, _metadata())
        return pb.DeleteModelResponse()

    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        found, next_cursor = await handlers.list_models(
            self.deps.views,
            cursor=request.cursor,
            limit=request.limit,
            sort_by=request.sort_by,
            sort_direction=request.sort_direction,
            query=request.query,
            owners=list(request.owners),
        )
        return pb.ListModelsResponse(models=[_model(m) for m in found], next_cursor=next_cursor)

    async def DeleteVersion(self, request: pb.DeleteVersionRequest, context: Any) -> pb.DeleteVersionResponse:
        cmd = commands.DeleteVersion(owner=request.owner, name=request.name, version_id=request.version_id)
        await handlers.delete_version(cmd, self.deps.uow, self.deps.clock, _metadata())
        return pb.DeleteVersionResponse()

    async def CreateFile(self, request: pb.CreateFileRequest, context: Any) -> pb.File:
        cmd = commands.CreateFile(
            id=request.id,
            owner=request.owner,
            name=request.name,
            content_type=request.content_type,
            size=request.size,
            sha256=request.sha256,
            md5=request.md5,
            metadata=_json_object(request.metadata_json, "metadata_json"),
        )
        ttl = timedelta(seconds=self.deps.settings.file_ttl_seconds)
        return _file(await handlers.create_file(cmd, self.deps.uow, self.deps.clock, ttl, _metadata()))

    async def GetFile(self, request: pb.GetFileRequest, context: Any) -> pb.File:
        return _file(await handlers.get_file(request.id, self.deps.views))

    async def ListFiles(self, request: pb.ListFilesRequest, context: Any) -> pb.ListFilesResponse:
        found, next_cursor = await self.deps.views.list_files(
            request.owner, cursor=request.cursor, limit=handlers.page_size(request.limit)
        )
        return pb.ListFilesResponse(files=[_file(f) for f in found], next_cursor=next_cursor)

    async def DeleteFile(self, request: pb.DeleteFileRequest, context: Any) -> pb.DeleteFileResponse:
        await handlers.delete_file(commands.DeleteFile(id=request.id), self.deps.uow, self.deps.clock, _metadata())
        return pb.DeleteFileResponse()

    async def PutCollection(self, request: pb.PutCollectionRequest, context: Any) -> pb.Collection:
        cmd = commands.PutCollection(
            slug=request.slug,
            name=request.name,
            description=request.description,
            full_description=request.full_description,
            models=list(request.models),
        )
        return _collection(await handlers.put_collection(cmd, self.deps.uow, self.deps.clock, _metadata()))

    async def GetCollection(self, request: pb.GetCollectionRequest, context: Any) -> pb.Collection:
        return _collection(await handlers.get_collection(request.slug, self.deps.views))

    async def ListCollections(self, request: pb.ListCollectionsRequest, context: Any) -> pb.ListCollectionsResponse:
        found, next_cursor = await self.deps.views.list_collections(
            cursor=request.cursor, limit=handlers.page_size(request.limit), query=request.query.strip()
        )
        return pb.ListCollectionsResponse(collections=[_collection(c) for c in found], next_cursor=next_cursor)

    async def _deployments(self, found: list[Deployment]) -> list[pb.Deployment]:
        """With each release's creator as an account (looked up once per creator)."""
        creators: dict[str, pb.Account] = {}
        for username in {d.current_release.created_by for d in found}:
            account = await self.deps.views.get_account(username)
            creators[username] = (
                _account(account) if account is not None else pb.Account(username=username, type="user", name=username)
            )
        messages = []
        for deployment in found:
            release = deployment.current_release
            messages.append(
                pb.Deployment(
                    owner=deployment.owner,
                    name=deployment.name,
                    created_at=_timestamp(deployment.created_at),
                    current_release=pb.DeploymentRelease(
                        number=release.number,
                        model=release.model,
                        version=release.version,
                        created_at=_timestamp(release.created_at),
                        created_by=creators[release.created_by],
                        hardware=release.hardware,
                        min_instances=release.min_instances,
                        max_instances=release.max_instances,
                    ),
                )
            )
        return messages

    async def CreateDeployment(self, request: pb.CreateDeploymentRequest, context: Any) -> pb.Deployment:
        cmd = commands.CreateDeployment(
            owner=request.owner,
            name=request.name,
            model=request.model,
            version=request.version,
            hardware=request.hardware,
            min_instances=request.min_instances,
            max_instances=request.max_instances,
            created_by=request.created_by or request.owner,
        )
        created = await handlers.create_deployment(
            cmd, self.deps.uow, self.deps.clock, self.deps.hardware.skus, _metadata()
        )
        return (await self._deployments([created]))[0]

    async def GetDeployment(self, request: pb.GetDeploymentRequest, context: Any) -> pb.Deployment:
        found = await handlers.get_deployment(request.owner, request.name, self.deps.views)
        return (await self._deployments([found]))[0]

    async def ListDeployments(self, request: pb.ListDeploymentsRequest, context: Any) -> pb.ListDeploymentsResponse:
        found, next_cursor = await handlers.list_deployments(
            list(request.owners), self.deps.views, cursor=request.cursor, limit=request.limit,
            all_owners=request.all_owners,
        )
        return pb.ListDeploymentsResponse(deployments=await self._deployments(found), next_cursor=next_cursor)

    async def UpdateDeployment(self, request: pb.UpdateDeploymentRequest, context: Any) -> pb.Deployment:
        cmd = commands.UpdateDeployment(
            owner=request.owner,
            name=request.name,
            created_by=request.created_by or request.owner,
            version=_optional(request, "version"),
            hardware=_optional(request, "hardware"),
            min_instances=_optional(request, "min_instances"),
            max_instances=_optional(request, "max_instances"),
        )
        updated = await handlers.update_deployment(
            cmd, self.deps.uow, self.deps.clock, self.deps.hardware.skus, _metadata()
        )
        return (await self._deployments([updated]))[0]

    async def DeleteDeployment(self, request: pb.DeleteDeploymentRequest, context: Any) -> pb.DeleteDeploymentResponse:
        cmd = commands.DeleteDeployment(owner=request.owner, name=request.name)
        await handlers.delete_deployment(cmd, self.deps.uow, self.deps.clock, _metadata())
        return pb.DeleteDeploymentResponse()


def _optional(request: Any, field: str) -> Any:
    return getattr(request, field) if request.HasField(field) else None


def create_rpc_server(deps: Deps, port: int, host: str = "0.0.0.0") -> RpcServer:
    """The registry's gRPC server (not started); start it with `await server.start([SERVICE_NAME])`."""
    server = create_server(port, host, error_map=ERROR_MAP)
    pb_grpc.add_RegistryServiceServicer_to_server(RegistryServicer(deps), server.server)
    return server
