"""`/v1/predictions` and `/v1/models/{owner}/{name}/predictions`."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from libs.predictions import TERMINAL_STATUSES, render_prediction
from libs.rpc import RpcNotFound
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.cancel_after import parse_cancel_after
from services.gateway.errors import ApiError, not_found
from services.gateway.schemas import PredictionRequest, VersionPredictionRequest

router = APIRouter(prefix="/v1")

PAGE_SIZE = 100
MAX_WAIT_SECONDS = 60
_PREFER_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$")
_VERSION_REF = re.compile(r"^(?:(?P<owner>[^/:]+)/(?P<name>[^/:]+))?(?::)?(?P<id>[0-9a-f]{64})?$")

INVALID_VERSION = ApiError(
    422,
    "Invalid version or not permitted",
    "The specified version does not exist (or perhaps you don't have permission to use it?)",
)


def parse_prefer_wait(header: str | None) -> int | None:
    """Seconds to hold the request: `wait` is 60, `wait=N` is N clamped to 1..60; anything else is no wait."""
    if not header:
        return None
    for preference in header.split(","):
        match = _PREFER_WAIT.match(preference)
        if match:
            seconds = int(match.group(1)) if match.group(1) else MAX_WAIT_SECONDS
            return max(1, min(seconds, MAX_WAIT_SECONDS))
    return None


def _deps(request: Request) -> Any:
    return request.app.state.deps


async def _created_response(request: Request, view: dict[str, Any], wait: int | None) -> JSONResponse:
    deps = _deps(request)
    headers: dict[str, str] = {}
    if wait is not None:
        view = await wait_for_prediction(deps, view, wait)
        headers["Preference-Applied"] = f"wait={wait}" if wait != MAX_WAIT_SECONDS else "wait"
        if view["status"] not in TERMINAL_STATUSES:
            # The official clients treat any status but `starting` as final output; only a finished
            # prediction may say otherwise.
            view = {**view, "status": "starting"}
    body = render_prediction(view, deps.settings.origin)
    headers["Location"] = body["urls"]["get"]
    return JSONResponse(body, status_code=201, headers=headers)


async def wait_for_prediction(deps: Any, view: dict[str, Any], seconds: int) -> dict[str, Any]:
    prediction_id = view["id"]
    deadline = time.monotonic() + seconds
    waiter = deps.waiters.register(prediction_id)
    try:
        while True:
            current = waiter.latest_view
            if current is None or current["status"] not in TERMINAL_STATUSES:
                current = await deps.projection.get(prediction_id) or view
            if current["status"] in TERMINAL_STATUSES:
                return current
            if waiter.saw_terminal:
                # Ended, but an earlier event is not in our read model yet: the scheduler has the truth.
                return await deps.scheduler.get_prediction(prediction_id)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return current
            try:
                # The short cap is a safety net for a notification lost between two gateway instances.
                await asyncio.wait_for(waiter.changed.wait(), timeout=min(remaining, 0.5))
            except TimeoutError:
                pass
            waiter.changed.clear()
    finally:
        deps.waiters.unregister(prediction_id, waiter)


async def _create(request: Request, account: Account, version_id: str, body: PredictionRequest) -> JSONResponse:
    deps = _deps(request)
    wait = parse_prefer_wait(request.headers.get("prefer"))
    cancel_after = parse_cancel_after(request.headers.get("cancel-after"))
    try:
        view = await deps.scheduler.create_prediction(
            version_id=version_id,
            input=body.input,
            account=account.username,
            webhook=body.webhook,
            webhook_events_filter=list(body.webhook_events_filter) if body.webhook_events_filter else None,
            cancel_after_seconds=cancel_after,
        )
    except RpcNotFound as exc:
        raise INVALID_VERSION from exc
    await deps.projection.apply_created(view)
    return await _created_response(request, view, wait)


@router.post("/predictions", status_code=201)
async def create_prediction(
    request: Request, body: VersionPredictionRequest, account: Account = Depends(current_account)
) -> JSONResponse:
    match = _VERSION_REF.match(body.version)
    if match is None or not (match.group("id") or match.group("owner")):
        raise INVALID_VERSION
    version_id = match.group("id")
    if version_id is None:
        model = await _deps(request).registry.get_model(match.group("owner"), match.group("name"))
        version_id = model["latest_version_id"]
        if not version_id:
            raise INVALID_VERSION
    return await _create(request, account, version_id, body)


@router.post("/models/{owner}/{name}/predictions", status_code=201)
async def create_model_prediction(
    owner: str, name: str, request: Request, body: PredictionRequest, account: Account = Depends(current_account)
) -> JSONResponse:
    try:
        model = await _deps(request).registry.get_model(owner, name)
    except RpcNotFound as exc:
        raise not_found() from exc
    if not model["latest_version_id"]:
        raise ApiError(404, "Not found", f"Model {owner}/{name} has no versions yet")
    return await _create(request, account, model["latest_version_id"], body)


async def _owned_view(request: Request, prediction_id: str, account: Account) -> dict[str, Any]:
    deps = _deps(request)
    view = await deps.projection.get(prediction_id)
    if view is None:
        # Created moments ago through another gateway instance, or the read model lags: ask the owner.
        try:
            view = await deps.scheduler.get_prediction(prediction_id)
        except RpcNotFound as exc:
            raise not_found() from exc
    if view.get("account") != account.username:
        raise not_found()
    return view


@router.get("/predictions/{prediction_id}")
async def get_prediction(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    view = await _owned_view(request, prediction_id, account)
    return render_prediction(view, _deps(request).settings.origin)


@router.post("/predictions/{prediction_id}/cancel")
async def cancel_prediction(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    await _owned_view(request, prediction_id, account)
    view = await _deps(request).scheduler.cancel_prediction(prediction_id)
    return render_prediction(view, _deps(request).settings.origin)


@router.get("/predictions/{prediction_id}/events")
async def list_prediction_events(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    await _owned_view(request, prediction_id, account)
    return {"results": await _deps(request).scheduler.list_events(prediction_id)}


def _encode_cursor(view: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(f"{view['created_at']}|{view['id']}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created_at, prediction_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(created_at), prediction_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "Bad request", "Invalid pagination cursor") from exc


@router.get("/predictions")
async def list_predictions(
    request: Request, cursor: str | None = None, account: Account = Depends(current_account)
) -> dict[str, Any]:
    deps = _deps(request)
    before = _decode_cursor(cursor) if cursor else None
    views = await deps.projection.list_for_account(account.username, before=before, limit=PAGE_SIZE + 1)
    page, more = views[:PAGE_SIZE], len(views) > PAGE_SIZE
    origin = deps.settings.origin
    return {
        "next": f"{origin}/v1/predictions?cursor={_encode_cursor(page[-1])}" if more else None,
        "previous": None,
        "results": [render_prediction(view, origin) for view in page],
    }

