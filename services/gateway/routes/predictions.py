"""`/v1/predictions` and `/v1/models/{owner}/{name}/predictions`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, NamedTuple

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from libs.predictions import TERMINAL_STATUSES, render_prediction
from services.gateway import handlers
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.handlers import INVALID_VERSION, NewPrediction, wait_for_prediction
from services.gateway.pagination import INVALID_CURSOR, decode_cursor, encode_cursor, page_body
from services.gateway.schemas import Prediction, PredictionPage, PredictionRequest, VersionPredictionRequest

__all__ = ["INVALID_VERSION", "parse_prefer_wait", "router", "wait_for_prediction"]

router = APIRouter(prefix="/v1")

PAGE_SIZE = 100
MAX_WAIT_SECONDS = 60
_PREFER_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$")


class WaitPreference(NamedTuple):
    seconds: int
    # What `Preference-Applied` echoes: `wait`, or `wait=N` with the N actually used.
    applied: str


def parse_prefer_wait(header: str | None) -> WaitPreference | None:
    """`wait` holds 60 s, `wait=N` N s clamped to 1..60; anything else is no wait."""
    if not header:
        return None
    for preference in header.split(","):
        match = _PREFER_WAIT.match(preference)
        if match:
            if match.group(1) is None:
                return WaitPreference(MAX_WAIT_SECONDS, "wait")
            seconds = max(1, min(int(match.group(1)), MAX_WAIT_SECONDS))
            return WaitPreference(seconds, f"wait={seconds}")
    return None


def _deps(request: Request) -> Any:
    return request.app.state.deps


def new_prediction(request: Request, body: PredictionRequest) -> NewPrediction:
    """The API request's body and `Cancel-After` header as the create handler takes them."""
    return NewPrediction(
        input=body.input,
        webhook=body.webhook,
        webhook_events_filter=list(body.webhook_events_filter) if body.webhook_events_filter else None,
        cancel_after=request.headers.get("cancel-after"),
        source="api",
    )


async def created_response(request: Request, account: Account, version: dict[str, Any], body: PredictionRequest) -> JSONResponse:
    """Create the prediction and answer 201, after waiting for it when the client sent `Prefer: wait`."""
    deps = _deps(request)
    wait = parse_prefer_wait(request.headers.get("prefer"))
    view = await handlers.create_prediction(deps, account, version, new_prediction(request, body))
    headers: dict[str, str] = {}
    if wait is not None:
        view = await wait_for_prediction(deps, view, wait.seconds)
        headers["Preference-Applied"] = wait.applied
        if view["status"] not in TERMINAL_STATUSES:
            # The official clients treat any status but `starting` as final output; only a finished
            # prediction may say otherwise.
            view = {**view, "status": "starting"}
    rendered = render_prediction(view, deps.settings.origin)
    headers["Location"] = rendered["urls"]["get"]
    return JSONResponse(rendered, status_code=201, headers=headers)


@router.post("/predictions", status_code=201, response_model=Prediction)
async def create_prediction(
    request: Request, body: VersionPredictionRequest, account: Account = Depends(current_account)
) -> JSONResponse:
    version = await handlers.resolve_version(_deps(request), account, body.version)
    return await created_response(request, account, version, body)


@router.post("/models/{owner}/{name}/predictions", status_code=201, response_model=Prediction)
async def create_model_prediction(
    owner: str, name: str, request: Request, body: PredictionRequest, account: Account = Depends(current_account)
) -> JSONResponse:
    version = await handlers.latest_runnable_version(_deps(request), account, owner, name)
    return await created_response(request, account, version, body)


@router.get("/predictions/{prediction_id}", response_model=Prediction)
async def get_prediction(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    view = await handlers.get_prediction(_deps(request), account, prediction_id)
    return JSONResponse(render_prediction(view, _deps(request).settings.origin))


@router.post("/predictions/{prediction_id}/cancel", response_model=Prediction)
async def cancel_prediction(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    view = await handlers.cancel_prediction(_deps(request), account, prediction_id)
    return JSONResponse(render_prediction(view, _deps(request).settings.origin))


@router.get("/predictions/{prediction_id}/events")
async def list_prediction_events(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    return {"results": await handlers.list_prediction_events(_deps(request), account, prediction_id)}


def decode_prediction_cursor(cursor: str) -> tuple[datetime, str]:
    created_at, prediction_id = decode_cursor(cursor, 2)
    try:
        return datetime.fromisoformat(created_at), prediction_id
    except ValueError:
        raise INVALID_CURSOR from None


@router.get("/predictions", response_model=PredictionPage)
async def list_predictions(
    request: Request, cursor: str | None = None, account: Account = Depends(current_account)
) -> JSONResponse:
    deps = _deps(request)
    before = decode_prediction_cursor(cursor) if cursor else None
    views = await handlers.list_predictions(deps, account, before=before, limit=PAGE_SIZE + 1)
    page, more = views[:PAGE_SIZE], len(views) > PAGE_SIZE
    origin = deps.settings.origin
    next_cursor = encode_cursor(str(page[-1]["created_at"]), page[-1]["id"]) if more else None
    body = page_body(origin, "/v1/predictions", [render_prediction(view, origin) for view in page], next_cursor)
    return JSONResponse(body)
