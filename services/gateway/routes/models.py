"""`/v1/models/{owner}/{name}` and its versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from libs.rpc import RpcNotFound
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.errors import not_found

router = APIRouter(prefix="/v1")


def version_body(version: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": version["id"],
        "created_at": version["created_at"],
        "cog_version": version["cog_version"] or "0.0.0",
        "openapi_schema": version["openapi_schema"],
    }


async def model_body(request: Request, model: dict[str, Any]) -> dict[str, Any]:
    registry = request.app.state.deps.registry
    latest = None
    if model["latest_version_id"]:
        latest = version_body(await registry.get_version(model["latest_version_id"]))
    origin = request.app.state.deps.settings.origin
    return {
        "url": f"{origin}/{model['owner']}/{model['name']}",
        "owner": model["owner"],
        "name": model["name"],
        "description": model["description"],
        "visibility": model["visibility"],
        "github_url": None,
        "paper_url": None,
        "license_url": None,
        "run_count": 0,
        "cover_image_url": None,
        "default_example": None,
        "latest_version": latest,
        "is_official": False,
    }


async def _visible_model(request: Request, owner: str, name: str, account: Account) -> dict[str, Any]:
    try:
        model = await request.app.state.deps.registry.get_model(owner, name)
    except RpcNotFound as exc:
        raise not_found() from exc
    if model["visibility"] != "public" and not can_access(account, model["owner"]):
        raise not_found()
    return model


@router.get("/models/{owner}/{name}")
async def get_model(owner: str, name: str, request: Request, account: Account = Depends(current_account)) -> dict[str, Any]:
    return await model_body(request, await _visible_model(request, owner, name, account))


@router.get("/models/{owner}/{name}/versions")
async def list_versions(
    owner: str, name: str, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    await _visible_model(request, owner, name, account)
    versions = await request.app.state.deps.registry.list_versions(owner, name)
    return {"next": None, "previous": None, "results": [version_body(v) for v in versions]}


@router.get("/models/{owner}/{name}/versions/{version_id}")
async def get_version(
    owner: str, name: str, version_id: str, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    await _visible_model(request, owner, name, account)
    try:
        version = await request.app.state.deps.registry.get_version(version_id)
    except RpcNotFound as exc:
        raise not_found() from exc
    if (version["owner"], version["name"]) != (owner, name):
        raise not_found()
    return version_body(version)
