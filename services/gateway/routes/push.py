"""`POST /v1/models/{owner}/{name}/versions`: a model directory, sent as a .tar.gz body, becomes a version.

The gateway streams the upload to disk, checks and describes the model (in child processes), stores the
package in the `cogwheel-versions` object store and asks the registry to record the version. The version id
is the sha256 of the package as repacked here, so the same content always gives the same version.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from libs.modelpkg import ModelPackageError, PushedPackage, UnpackLimits, delete_package, push_package_file
from libs.rpc import RpcAlreadyExists, RpcError, RpcInvalidArgument, RpcNotFound
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.errors import ApiError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1")

# Each push imports user code and may run pip; a few at a time keep the gateway responsive.
_PUSHES = asyncio.Semaphore(2)
_ACCEPTED_TYPES = ("application/gzip", "application/x-gzip", "application/x-tar+gzip", "application/octet-stream")


def _scratch_file(directory: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="push-", suffix=".tar.gz", dir=directory)
    os.close(fd)
    return Path(name)


def _gateway_dir(request: Request) -> Path:
    return Path(request.app.state.deps.settings.data_dir).resolve() / "gateway"


async def _receive(request: Request, dest: Path, limit: int) -> int:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "Payload too large", f"A model package may be at most {limit} bytes.")
    size = 0
    with dest.open("wb") as out:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "Payload too large", f"A model package may be at most {limit} bytes.")
            await asyncio.to_thread(out.write, chunk)
    if size == 0:
        raise ApiError(422, "Invalid model package", "The request body is empty; send the model directory as a .tar.gz.")
    return size


async def _ensure_model(request: Request, owner: str, name: str, visibility: str, hardware: str) -> None:
    registry = request.app.state.deps.registry
    try:
        await registry.get_model(owner, name)
        return
    except RpcNotFound:
        pass
    with contextlib.suppress(RpcAlreadyExists):
        await registry.create_model(owner, name, visibility=visibility, hardware=hardware)


async def _record(
    request: Request, account: Account, owner: str, name: str, pushed: PushedPackage
) -> tuple[dict[str, Any], bool]:
    registry = request.app.state.deps.registry
    try:
        existing = await registry.get_version(pushed.version_id)
    except RpcNotFound:
        existing = None
    if existing is not None and (existing["owner"], existing["name"]) != (owner, name):
        # Only a model the pusher may see is named: another account's private model must stay unknown.
        where = (
            f"{existing['owner']}/{existing['name']}" if can_access(account, existing["owner"]) else "another model"
        )
        raise ApiError(
            409, "Version already exists",
            f"This exact package is already a version of {where}; change its content to push it here.",
        )
    version = await registry.create_version(owner, name, pushed)
    return version, existing is None


async def _undo_upload(request: Request, pushed: PushedPackage) -> None:
    """Remove a package stored by this push when no version ended up referring to it."""
    if not pushed.stored_now:
        return
    try:
        await request.app.state.deps.registry.get_version(pushed.version_id)
        return
    except RpcNotFound:
        pass
    except RpcError:
        return  # unknown: keeping an orphan package is harmless, deleting a referenced one is not
    await delete_package(request.app.state.deps.bus.js, pushed.version_id)


@router.post("/models/{owner}/{name}/versions", status_code=201)
async def push_version(
    owner: str,
    name: str,
    request: Request,
    account: Account = Depends(current_account),
    visibility: str = Query("private", pattern="^(public|private)$"),
    hardware: str = Query("cpu", max_length=64),
) -> JSONResponse:
    """Create a version from the request body (the model directory as a .tar.gz).

    The model is created on first push (with `visibility` and `hardware`). Answers 201 with the version, or
    200 when this exact content is already a version of the model; `warnings` lists cog.yaml settings that
    are not honoured (system packages).
    """
    if not can_access(account, owner):
        raise ApiError(403, "Forbidden", f"You are not allowed to push versions of {owner}/{name}.")
    content_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    if content_type not in _ACCEPTED_TYPES:
        raise ApiError(415, "Unsupported media type",
                       "Send the model directory as a .tar.gz request body (Content-Type: application/gzip).")
    deps = request.app.state.deps
    limit = deps.settings.push_max_bytes
    work_root = _gateway_dir(request) / "uploads"
    work_root.mkdir(parents=True, exist_ok=True)
    upload = await asyncio.to_thread(_scratch_file, work_root)
    try:
        await _receive(request, upload, limit)
        async with _PUSHES:
            unpack = UnpackLimits(max_size=limit, max_entries=deps.settings.push_max_files,
                                  max_ratio=deps.settings.push_max_ratio, max_depth=deps.settings.push_max_depth)
            pushed = await push_package_file(deps.bus.js, upload, env_cache_dir=_gateway_dir(request) / "envs",
                                             max_unpacked=limit, work_dir=work_root, limits=unpack)
    except ModelPackageError as exc:
        # Environment builds name files under the gateway's data directory; the client has no use for it.
        detail = str(exc).replace(f"{_gateway_dir(request)}/", "").replace(str(_gateway_dir(request)), "")
        raise ApiError(422, "Invalid model package", detail) from None
    finally:
        await asyncio.to_thread(upload.unlink, True)
    try:
        await _ensure_model(request, owner, name, visibility, hardware)
        version, created = await _record(request, account, owner, name, pushed)
    except RpcInvalidArgument as exc:
        await _undo_upload(request, pushed)
        raise ApiError(422, "Invalid model", str(exc.details() or exc)) from None
    except BaseException:
        await _undo_upload(request, pushed)
        raise
    for warning in pushed.warnings:
        log.warning("push %s/%s %s: %s", owner, name, pushed.version_id, warning)
    body = {
        "id": version["id"],
        "created_at": version["created_at"],
        "cog_version": version["cog_version"],
        "openapi_schema": version["openapi_schema"],
        "hardware": version["hardware"],
        "concurrency_max": version["concurrency_max"],
        "warnings": pushed.warnings,
    }
    return JSONResponse(body, status_code=201 if created else 200)
