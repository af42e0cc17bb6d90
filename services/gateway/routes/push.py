"""`POST /v1/models/{owner}/{name}/versions`: a model directory, sent as a .tar.gz body, becomes a version.

The gateway streams the upload to disk, checks and describes the model (in child processes), stores the
package in the `cogwheel-versions` object store and asks the registry to record the version. The version id
is the sha256 of the package as repacked here, so the same content always gives the same version.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from services.gateway import handlers
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account

router = APIRouter(prefix="/v1")


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
    pushed = await handlers.push_version(
        request.app.state.deps, account, owner, name, request.stream(),
        content_type=request.headers.get("content-type", "application/octet-stream"),
        declared_length=request.headers.get("content-length", ""),
        visibility=visibility, hardware=hardware,
    )
    version = pushed.version
    body = {
        "id": version["id"],
        "created_at": version["created_at"],
        "cog_version": version["cog_version"],
        "openapi_schema": version["openapi_schema"],
        "hardware": version["hardware"],
        "concurrency_max": version["concurrency_max"],
        "warnings": pushed.warnings,
    }
    return JSONResponse(body, status_code=201 if pushed.created else 200)
