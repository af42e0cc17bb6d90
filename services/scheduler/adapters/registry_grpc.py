"""Registry lookups over gRPC; versions are immutable, so they are cached for the process's life."""

from __future__ import annotations

import json
from collections import OrderedDict

import grpc

from libs.pb.cogwheel.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.rpc import RpcNotFound, failover_options_for
from services.scheduler.domain.errors import VersionNotFound
from services.scheduler.domain.schema import secret_inputs, streams_output
from services.scheduler.ports import DeploymentInfo, VersionInfo

# Several registries may stand side by side (`cogwheel up --registries N`): spread calls, retry reads elsewhere.
REGISTRY_FAILOVER = failover_options_for(registry_pb2.DESCRIPTOR.services_by_name["RegistryService"])


class GrpcRegistryClient:
    def __init__(self, channel: grpc.aio.Channel, cache_size: int = 4096) -> None:
        self._stub = registry_pb2_grpc.RegistryServiceStub(channel)
        self._cache: OrderedDict[str, VersionInfo] = OrderedDict()
        self._cache_size = cache_size

    async def get_version(self, version_id: str) -> VersionInfo:
        cached = self._cache.get(version_id)
        if cached is not None:
            self._cache.move_to_end(version_id)
            return cached
        try:
            reply = await self._stub.GetVersion(registry_pb2.GetVersionRequest(version_id=version_id))
        except RpcNotFound as exc:
            raise VersionNotFound(f"version {version_id} not found") from exc
        try:
            schema = json.loads(reply.openapi_schema_json or "{}")
        except json.JSONDecodeError:
            schema = {}
        if not isinstance(schema, dict):
            schema = {}
        info = VersionInfo(
            id=reply.id,
            model=f"{reply.owner}/{reply.name}",
            hardware=reply.hardware or "cpu",
            package_key=reply.package_key,
            predictor_ref=reply.predictor_ref,
            streams=streams_output(schema),
            secret_inputs=secret_inputs(schema),
        )
        self._cache[version_id] = info
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return info

    async def file_owner(self, file_id: str) -> str | None:
        """The account that uploaded the file; None when there is no such (unexpired) file."""
        try:
            reply = await self._stub.GetFile(registry_pb2.GetFileRequest(id=file_id))
        except RpcNotFound:
            return None
        return str(reply.owner)

    async def delete_file(self, file_id: str) -> None:
        await self._stub.DeleteFile(registry_pb2.DeleteFileRequest(id=file_id))

    async def deployments(self) -> list[DeploymentInfo]:
        """Every deployment's current release (its version, hardware and instance bounds)."""
        found: list[DeploymentInfo] = []
        cursor = ""
        for _ in range(1000):
            reply = await self._stub.ListDeployments(
                registry_pb2.ListDeploymentsRequest(cursor=cursor, limit=100, all_owners=True)
            )
            for deployment in reply.deployments:
                release = deployment.current_release
                found.append(DeploymentInfo(
                    name=f"{deployment.owner}/{deployment.name}", model_version=release.version,
                    hardware=release.hardware or "cpu", min_instances=release.min_instances,
                    max_instances=release.max_instances,
                ))
            cursor = reply.next_cursor
            if not cursor:
                break
        return found

    async def scale_deployment(
        self, owner: str, name: str, *, min_instances: int | None, max_instances: int | None
    ) -> DeploymentInfo:
        """A new release of the deployment with other instance bounds (made in the owner's name)."""
        request = registry_pb2.UpdateDeploymentRequest(owner=owner, name=name, created_by=owner)
        if min_instances is not None:
            request.min_instances = min_instances
        if max_instances is not None:
            request.max_instances = max_instances
        reply = await self._stub.UpdateDeployment(request)
        release = reply.current_release
        return DeploymentInfo(f"{reply.owner}/{reply.name}", release.version, release.hardware or "cpu",
                              release.min_instances, release.max_instances)
