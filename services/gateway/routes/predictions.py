"""`/v1/predictions` and `/v1/models/{owner}/{name}/predictions`."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from libs.predictions import TERMINAL_STATUSES, PredictionStatus, render_prediction
from services.gateway import handlers
from services.gateway.adapters.registry_grpc import Account
from services.gateway.arrival import arrived_at
from services.gateway.auth import current_account
from services.gateway.errors import ApiError
from services.gateway.handlers import INVALID_VERSION, NewPrediction, wait_for_prediction
from services.gateway.idempotency import parse_idempotency_key, request_fingerprint
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
            digits = match.group(1).lstrip("0") or "0"
            # Compared by length first: int() of thousands of digits is refused by Python itself.
            seconds = MAX_WAIT_SECONDS if len(digits) > 3 else max(1, min(int(digits), MAX_WAIT_SECONDS))
            return WaitPreference(seconds, f"wait={seconds}")
    return None


def _deps(request: Request) -> Any:
    return request.app.state.deps


def _webhook_of(body: PredictionRequest) -> tuple[str | None, list[str] | None]:
    """`webhook` and its event filter; the legacy `webhook_completed` is a webhook for `completed` only."""
    events: list[str] | None = list(body.webhook_events_filter) if body.webhook_events_filter else None
    if not body.webhook_completed:
        return body.webhook, events
    if body.webhook and body.webhook != body.webhook_completed:
        description = "Must be the same URL as webhook (a prediction has one webhook; use webhook_events_filter)"
        raise ApiError(422, "Input validation failed", f"- webhook_completed: {description}\n",
                       invalid_fields=[{"type": "invalid", "field": "webhook_completed", "description": description}])
    if body.webhook:
        return body.webhook, events
    return body.webhook_completed, ["completed"]


async def new_prediction(
    request: Request, body: PredictionRequest, *, deployment: str | None = None, hardware: str | None = None
) -> NewPrediction:
    """The API request's body and headers (`Cancel-After`, `Idempotency-Key`) as the create handler takes them."""
    webhook, webhook_events_filter = _webhook_of(body)
    idempotency_key = parse_idempotency_key(request.headers.get("idempotency-key"))
    fingerprint = (
        request_fingerprint(request.url.path, await request.body(), request.headers.get("cancel-after"))
        if idempotency_key else ""
    )
    return NewPrediction(
        input=body.input,
        webhook=webhook,
        webhook_events_filter=webhook_events_filter,
        cancel_after=request.headers.get("cancel-after"),
        source="api",
        deployment=deployment,
        hardware=hardware,
        idempotency_key=idempotency_key,
        request_fingerprint=fingerprint,
    )


async def created_response(
    request: Request,
    account: Account,
    version: dict[str, Any],
    body: PredictionRequest,
    *,
    deployment: str | None = None,
    hardware: str | None = None,
) -> JSONResponse:
    """Create the prediction and answer 201, after waiting for it when the client sent `Prefer: wait`.

    `deployment` (`owner/name`) and `hardware` are given for predictions made through a deployment; a retry
    with an Idempotency-Key that created a prediction before gets that prediction with 200.
    """
    deps = _deps(request)
    wait = parse_prefer_wait(request.headers.get("prefer"))
    new = await new_prediction(request, body, deployment=deployment, hardware=hardware)
    headers: dict[str, str] = {}
    if wait is None:
        created = await handlers.create_prediction_once(deps, account, version, new)
        view = created.view
    else:
        created = await handlers.create_prediction_and_wait(deps, account, version, new, wait.seconds,
                                                            since=arrived_at(request))
        view = created.view
        headers["Preference-Applied"] = wait.applied
        if view["status"] not in TERMINAL_STATUSES:
            # The official clients treat any status but `starting` as final output; only a finished
            # prediction may say otherwise.
            view = {**view, "status": PredictionStatus.STARTING.value}
    rendered = render_prediction(view, deps.settings.origin)
    headers["Location"] = rendered["urls"]["get"]
    return JSONResponse(rendered, status_code=200 if created.replayed else 201, headers=headers)


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


def _query_time(name: str, value: str | None) -> datetime | None:
    """An ISO 8601 date-time query parameter (``Z`` or an offset; a naive one is taken as UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise ApiError(422, "Input validation failed", f"- {name}: must be an ISO 8601 date-time\n",
                       invalid_fields=[{"type": "format", "field": name,
                                        "description": "Must be an ISO 8601 date-time"}]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.get("/predictions", response_model=PredictionPage)
async def list_predictions(
    request: Request,
    cursor: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    source: Literal["web", "api"] | None = None,
    account: Account = Depends(current_account),
) -> JSONResponse:
    """The account's predictions, newest first; filtered by creation time and `source` as Replicate's API is."""
    deps = _deps(request)
    before = decode_prediction_cursor(cursor) if cursor else None
    views = await handlers.list_predictions(
        deps, account, before=before, limit=PAGE_SIZE + 1, created_after=_query_time("created_after", created_after),
        created_before=_query_time("created_before", created_before), source=source,
    )
    page, more = views[:PAGE_SIZE], len(views) > PAGE_SIZE
    origin = deps.settings.origin
    next_cursor = encode_cursor(str(page[-1]["created_at"]), page[-1]["id"]) if more else None
    # The filters travel with `next`, so every page answers the same question.
    params = {"created_after": created_after, "created_before": created_before, "source": source}
    body = page_body(origin, "/v1/predictions", [render_prediction(view, origin) for view in page], next_cursor,
                     {k: v for k, v in params.items() if v is not None})
    return JSONResponse(body)
