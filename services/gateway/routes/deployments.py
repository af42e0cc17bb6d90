"""`/v1/deployments`: Replicate's deployments API, and predictions made through a deployment.

A deployment belongs to the account of the token that created it; that account and the members of an
organization that owns one see and change it, everyone else gets 404. Predictions made through it run the
current release's version on the release's hardware and carry `deployment`.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from libs.rpc import RpcNotFound
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.errors import ApiError, not_found
from services.gateway.pagination import page_body, registry_page
from services.gateway.projection import active_predictions_of_deployment
from services.gateway.routes import predictions
from services.gateway.routes.account import check_hardware
from services.gateway.routes.models import visible_model
from services.gateway.schemas import (
    DEPLOYMENT_NAME_PATTERN,
    Deployment,
    DeploymentCreateRequest,
    DeploymentPage,
    DeploymentUpdateRequest,
    Prediction,
    PredictionRequest,
)

router = APIRouter(prefix="/v1")


def _deps(request: Request) -> Any:
    return request.app.state.deps


def _invalid(field: str, description: str) -> ApiError:
    return ApiError(422, "Input validation failed", f"- {field}: {description}\n",
                    invalid_fields=[{"type": "invalid", "field": field, "description": description}])


async def _visible_deployment(request: Request, owner: str, name: str, account: Account) -> dict[str, Any]:
    """The deployment if `account` is its owner or a member of the owning organization; else 404."""
    if not can_access(account, owner) or not re.fullmatch(DEPLOYMENT_NAME_PATTERN, name):
        raise not_found()
    try:
        return await _deps(request).registry.get_deployment(owner, name)
    except RpcNotFound as exc:
        raise not_found() from exc


async def _check_model(request: Request, ref: str, account: Account) -> None:
    """The model must exist and be runnable by the caller (public, or theirs)."""
    owner, _, name = ref.partition("/")
    try:
        await visible_model(request, owner, name, account)
    except ApiError:
        raise _invalid("model", f"{ref} does not exist or you do not have permission to use it") from None


@router.get("/deployments", response_model=DeploymentPage)
async def list_deployments(
    request: Request, cursor: str | None = None, account: Account = Depends(current_account)
) -> JSONResponse:
    """The deployments of the token's account and of the organizations it belongs to, newest first."""
    deps = _deps(request)
    owners = [account.username, *account.organizations]
    found, next_cursor = await registry_page(lambda: deps.registry.list_deployments(owners, cursor or ""))
    return JSONResponse(page_body(deps.settings.origin, "/v1/deployments", found, next_cursor))


@router.post("/deployments", response_model=Deployment)
async def create_deployment(
    body: DeploymentCreateRequest, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    """Owned by the token's account; answers 200 with the deployment, as Replicate does."""
    deps = _deps(request)
    check_hardware(deps.hardware, body.hardware)
    await _check_model(request, body.model, account)
    try:
        created = await deps.registry.create_deployment(
            owner=account.username, created_by=account.username, **body.model_dump()
        )
    except RpcNotFound:
        raise _invalid("version", f"{body.version} is not a version of {body.model}") from None
    return JSONResponse(created)


@router.get("/deployments/{owner}/{name}", response_model=Deployment)
async def get_deployment(
    owner: str, name: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    return JSONResponse(await _visible_deployment(request, owner, name, account))


@router.patch("/deployments/{owner}/{name}", response_model=Deployment)
async def update_deployment(
    owner: str, name: str, body: DeploymentUpdateRequest, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    """Any change is a new release (`current_release.number` + 1)."""
    deps = _deps(request)
    current = await _visible_deployment(request, owner, name, account)
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise _invalid("", "give at least one of version, hardware, min_instances, max_instances")
    if "hardware" in changes:
        check_hardware(deps.hardware, changes["hardware"])
    try:
        updated = await deps.registry.update_deployment(owner, name, account.username, **changes)
    except RpcNotFound:
        if "version" not in changes:
            raise
        model = current["current_release"]["model"]
        raise _invalid("version", f"{changes['version']} is not a version of {model}") from None
    return JSONResponse(updated)


def deletion_refusal(deployment: str, running_predictions: int, online_instances: list[dict[str, Any]]) -> str | None:
    """Why a deployment cannot be deleted now, or None: predictions made through it must have ended and its
    instances (of any release) must have stopped, so nothing it started is left behind."""
    if running_predictions:
        return (f"Deployment {deployment} has {running_predictions} prediction(s) still running; "
                "wait for them to finish or cancel them first")
    if online_instances:
        states = ", ".join(sorted({instance["state"] for instance in online_instances}))
        return (f"Deployment {deployment} has {len(online_instances)} instance(s) online ({states}); it can be "
                "deleted once they have stopped: set min_instances to 0 and wait for them to scale to zero "
                "when idle")
    return None


@router.delete("/deployments/{owner}/{name}", status_code=204, response_class=Response)
async def delete_deployment(
    owner: str, name: str, request: Request, account: Account = Depends(current_account)
) -> Response:
    """Refused (409) while predictions made through the deployment are still starting or processing, or while
    the scheduler has instances of it online."""
    deps = _deps(request)
    await _visible_deployment(request, owner, name, account)
    deployment = f"{owner}/{name}"
    running = await active_predictions_of_deployment(deps.engine, deployment)
    online = [] if running else await deps.scheduler.online_instances(deployment)
    refusal = deletion_refusal(deployment, running, online)
    if refusal is not None:
        raise ApiError(409, "Conflict", refusal)
    await deps.registry.delete_deployment(owner, name)
    return Response(status_code=204)


async def create_deployment_prediction_for(
    request: Request, account: Account, deployment: dict[str, Any], body: PredictionRequest
) -> JSONResponse:
    """The one call into the gateway's prediction creation (Prefer: wait, Cancel-After, webhooks, streams)."""
    release = deployment["current_release"]
    try:
        version = await _deps(request).registry.get_version_cached(release["version"])
    except RpcNotFound as exc:
        raise predictions.INVALID_VERSION from exc
    return await predictions.created_response(
        request,
        account,
        version,
        body,
        deployment=f"{deployment['owner']}/{deployment['name']}",
        hardware=release["configuration"]["hardware"],
    )


@router.post("/deployments/{owner}/{name}/predictions", status_code=201, response_model=Prediction)
async def create_deployment_prediction(
    owner: str, name: str, request: Request, body: PredictionRequest, account: Account = Depends(current_account)
) -> JSONResponse:
    deployment = await _visible_deployment(request, owner, name, account)
    return await create_deployment_prediction_for(request, account, deployment, body)
