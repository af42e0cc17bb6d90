"""`/v1/predictions` and `/v1/models/{owner}/{name}/predictions`."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from libs.predictions import TERMINAL_STATUSES, render_prediction
from services.gateway.idempotency import parse_idempotency_key, request_fingerprint
from libs.rpc import RpcNotFound
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.arrival import arrived_at
from services.gateway.auth import current_account
from services.gateway.cancel_after import parse_cancel_after
from services.gateway.errors import ApiError, not_found
from services.gateway.pagination import INVALID_CURSOR, decode_cursor, encode_cursor, page_body
from services.gateway.schemas import Prediction, PredictionPage, PredictionRequest, VersionPredictionRequest
from services.gateway.validation import problem_detail, validate_input
from services.gateway.webhook_urls import validate_webhook_url

router = APIRouter(prefix="/v1")
log = logging.getLogger(__name__)

PAGE_SIZE = 100
MAX_WAIT_SECONDS = 60
_PREFER_WAIT = re.compile(r"^\s*wait(?:\s*=\s*(\d+))?\s*$")
_VERSION_REF = re.compile(r"^(?:(?P<owner>[^/:]+)/(?P<name>[^/:]+))?(?::)?(?P<id>[0-9a-f]{64})?$")

INVALID_VERSION = ApiError(
    422,
    "Invalid version or not permitted",
    "The specified version does not exist (or perhaps you don't have permission to use it?)",
)


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


async def _created_response(
    request: Request, view: dict[str, Any], wait: WaitPreference | None, status_code: int = 201
) -> JSONResponse:
    deps = _deps(request)
    headers: dict[str, str] = {}
    if wait is not None:
        view = await wait_for_prediction(deps, view, wait.seconds, since=arrived_at(request))
        headers["Preference-Applied"] = wait.applied
        if view["status"] not in TERMINAL_STATUSES:
            # The official clients treat any status but `starting` as final output; only a finished
            # prediction may say otherwise.
            view = {**view, "status": "starting"}
    body = render_prediction(view, deps.settings.origin)
    headers["Location"] = body["urls"]["get"]
    return JSONResponse(body, status_code=status_code, headers=headers)


async def wait_for_prediction(
    deps: Any, view: dict[str, Any], seconds: int, *, since: float | None = None
) -> dict[str, Any]:
    """The view once the prediction ended, or as it is ``seconds`` after ``since`` (monotonic; default now)."""
    prediction_id = view["id"]
    deadline = (time.monotonic() if since is None else since) + seconds
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


def _check_input(version: dict[str, Any], body: PredictionRequest) -> None:
    problems = validate_input(version["openapi_schema"], body.input, cache_key=version["id"])
    if problems:
        raise ApiError(
            422, "Input validation failed", problem_detail(problems), invalid_fields=[p.as_dict() for p in problems]
        )


async def _runnable_model(request: Request, owner: str, name: str, account: Account) -> dict[str, Any] | None:
    """The model if `account` may run it (public, or private and theirs); None otherwise."""
    try:
        model = await _deps(request).registry.get_model(owner, name)
    except RpcNotFound:
        return None
    if model["visibility"] != "public" and not can_access(account, model["owner"]):
        return None
    return model


def _webhook_of(body: PredictionRequest) -> tuple[str | None, list[str] | None]:
    """`webhook` and its event filter; the legacy `webhook_completed` is a webhook for `completed` only."""
    events = list(body.webhook_events_filter) if body.webhook_events_filter else None
    if not body.webhook_completed:
        return body.webhook, events
    if body.webhook and body.webhook != body.webhook_completed:
        description = "Must be the same URL as webhook (a prediction has one webhook; use webhook_events_filter)"
        raise ApiError(422, "Input validation failed", f"- webhook_completed: {description}\n",
                       invalid_fields=[{"type": "invalid", "field": "webhook_completed", "description": description}])
    if body.webhook:
        return body.webhook, events
    return body.webhook_completed, ["completed"]


async def _create(
    request: Request,
    account: Account,
    version: dict[str, Any],
    body: PredictionRequest,
    *,
    deployment: str | None = None,
    hardware: str | None = None,
) -> JSONResponse:
    """`deployment` (`owner/name`) and `hardware` are given for predictions made through a deployment."""
    webhook, webhook_events_filter = _webhook_of(body)
    validate_webhook_url(webhook)
    deps = _deps(request)
    wait = parse_prefer_wait(request.headers.get("prefer"))
    _check_input(version, body)
    cancel_after = parse_cancel_after(request.headers.get("cancel-after"))
    idempotency_key = parse_idempotency_key(request.headers.get("idempotency-key"))
    fingerprint = request_fingerprint(request.url.path, await request.body(), request.headers.get("cancel-after"))
    try:
        view = await deps.scheduler.create_prediction(
            version_id=version["id"],
            input=body.input,
            account=account.username,
            webhook=webhook,
            webhook_events_filter=webhook_events_filter,
            cancel_after_seconds=cancel_after,
            deployment=deployment,
            hardware=hardware,
            idempotency_key=idempotency_key,
            request_fingerprint=fingerprint,
        )
    except RpcNotFound as exc:
        raise INVALID_VERSION from exc
    replayed = bool(view.pop("idempotent_replay", False))
    try:
        await deps.projection.apply_created(view)
    except Exception:  # noqa: BLE001 - the prediction is committed; the event consumer fills the read model
        log.warning("read model not updated for %s; the event consumer will", view["id"], exc_info=True)
    # A retried request with its Idempotency-Key gets the prediction it created before, as 200.
    return await _created_response(request, view, wait, status_code=200 if replayed else 201)


async def _resolve_version(request: Request, account: Account, ref: str) -> dict[str, Any]:
    """`<id>`, `owner/name:<id>` or `owner/name` (its latest version), if `account` may run it."""
    match = _VERSION_REF.match(ref)
    if match is None or not (match.group("id") or match.group("owner")):
        raise INVALID_VERSION
    registry = _deps(request).registry
    owner, name, version_id = match.group("owner"), match.group("name"), match.group("id")
    if version_id is None:
        model = await _runnable_model(request, owner, name, account)
        if model is None or model["latest_version"] is None:
            raise INVALID_VERSION
        return model["latest_version"]
    try:
        version = await registry.get_version_cached(version_id)
    except RpcNotFound as exc:
        raise INVALID_VERSION from exc
    if owner is not None and (owner, name) != (version["owner"], version["name"]):
        raise INVALID_VERSION
    # A version of one's own (or one's organization's) model needs no visibility lookup.
    if can_access(account, version["owner"]):
        return version
    if await _runnable_model(request, version["owner"], version["name"], account) is None:
        raise INVALID_VERSION
    return version


@router.post("/predictions", status_code=201, response_model=Prediction)
async def create_prediction(
    request: Request, body: VersionPredictionRequest, account: Account = Depends(current_account)
) -> JSONResponse:
    version = await _resolve_version(request, account, body.version)
    return await _create(request, account, version, body)


@router.post("/models/{owner}/{name}/predictions", status_code=201, response_model=Prediction)
async def create_model_prediction(
    owner: str, name: str, request: Request, body: PredictionRequest, account: Account = Depends(current_account)
) -> JSONResponse:
    model = await _runnable_model(request, owner, name, account)
    if model is None:
        raise not_found()
    if model["latest_version"] is None:
        raise ApiError(404, "Not found", f"Model {owner}/{name} has no versions yet")
    return await _create(request, account, model["latest_version"], body)


async def _owned_view(request: Request, prediction_id: str, account: Account) -> dict[str, Any]:
    deps = _deps(request)
    view = await deps.projection.get(prediction_id)
    if view is None:
        # Created moments ago through another gateway instance, or the read model lags: ask the owner.
        try:
            view = await deps.scheduler.get_prediction(prediction_id)
        except RpcNotFound as exc:
            raise not_found() from exc
    if not can_access(account, view.get("account")):
        raise not_found()
    return view


@router.get("/predictions/{prediction_id}", response_model=Prediction)
async def get_prediction(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    view = await _owned_view(request, prediction_id, account)
    return JSONResponse(render_prediction(view, _deps(request).settings.origin))


@router.post("/predictions/{prediction_id}/cancel", response_model=Prediction)
async def cancel_prediction(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    await _owned_view(request, prediction_id, account)
    view = await _deps(request).scheduler.cancel_prediction(prediction_id)
    return JSONResponse(render_prediction(view, _deps(request).settings.origin))


@router.get("/predictions/{prediction_id}/events")
async def list_prediction_events(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    await _owned_view(request, prediction_id, account)
    return {"results": await _deps(request).scheduler.list_events(prediction_id)}


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
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
    before = _decode_cursor(cursor) if cursor else None
    filters = {"created_after": _query_time("created_after", created_after),
               "created_before": _query_time("created_before", created_before), "source": source}
    views = await deps.projection.list_for_account(account.username, before=before, limit=PAGE_SIZE + 1, **filters)
    page, more = views[:PAGE_SIZE], len(views) > PAGE_SIZE
    origin = deps.settings.origin
    next_cursor = encode_cursor(str(page[-1]["created_at"]), page[-1]["id"]) if more else None
    # The filters travel with `next`, so every page answers the same question.
    params = {"created_after": created_after, "created_before": created_before, "source": source}
    body = page_body(origin, "/v1/predictions", [render_prediction(view, origin) for view in page], next_cursor,
                     {k: v for k, v in params.items() if v is not None})
    return JSONResponse(body)

