"""`/v1/models`: listing, search (`QUERY`), create, get, update, delete, readme, examples, and versions."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from libs.rpc import RpcNotFound
from services.gateway import handlers
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.errors import ApiError, not_found
from services.gateway.pagination import page_body, registry_page
from services.gateway.projection import active_predictions_of_version, run_counts
from services.gateway.routes.account import check_hardware
from services.gateway.schemas import (
    Model,
    ModelCreateRequest,
    ModelPage,
    ModelUpdateRequest,
    PredictionPage,
    Version,
    VersionPage,
)

router = APIRouter(prefix="/v1")

MAX_QUERY_BYTES = 1000
SortBy = Literal["model_created_at", "latest_version_created_at"]
SortDirection = Literal["asc", "desc"]


def _deps(request: Request) -> Any:
    return request.app.state.deps


def version_body(version: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": version["id"],
        "created_at": version["created_at"],
        "cog_version": version["cog_version"] or "0.0.0",
        "openapi_schema": version["openapi_schema"],
    }


def model_body(origin: str, model: dict[str, Any], run_count: int) -> dict[str, Any]:
    latest = model.get("latest_version")
    return {
        "url": f"{origin}/{model['owner']}/{model['name']}",
        "owner": model["owner"],
        "name": model["name"],
        # Replicate's search schema types it as a plain string, so "no description" is "".
        "description": model["description"] or "",
        "visibility": model["visibility"],
        "github_url": model.get("github_url"),
        "paper_url": model.get("paper_url"),
        "license_url": model.get("license_url"),
        "run_count": run_count,
        "cover_image_url": model.get("cover_image_url"),
        # No prediction is marked as a model's example yet (see list_examples).
        "default_example": None,
        "latest_version": version_body(latest) if latest else None,
        "is_official": False,
    }


async def model_bodies(request: Request, models: list[dict[str, Any]]) -> list[dict[str, Any]]:
    deps = _deps(request)
    counts = await run_counts(deps.engine, [f"{m['owner']}/{m['name']}" for m in models])
    return [model_body(deps.settings.origin, m, counts.get(f"{m['owner']}/{m['name']}", 0)) for m in models]


async def visible_model(request: Request, owner: str, name: str, account: Account | None) -> dict[str, Any]:
    """The model if `account` may see it: public ones to everyone, private ones to their owner. Else 404."""
    return await handlers.visible_model(_deps(request), owner, name, account)


async def _owned_model(request: Request, owner: str, name: str, account: Account) -> dict[str, Any]:
    model = await visible_model(request, owner, name, account)
    if not can_access(account, model["owner"]):
        raise ApiError(403, "Forbidden", f"You do not have permission to change {owner}/{name}")
    return model


@router.get("/models", response_model=ModelPage)
async def list_models(
    request: Request,
    cursor: str | None = None,
    sort_by: SortBy = "latest_version_created_at",
    sort_direction: SortDirection = "desc",
    query: str | None = None,
    _: Account = Depends(current_account),
) -> JSONResponse:
    if query:  # the `next` link of a search (`QUERY /v1/models`) carries its query
        return await _search_page(request, query, cursor)
    deps = _deps(request)
    models, next_cursor = await registry_page(
        lambda: deps.registry.list_models(cursor=cursor or "", sort_by=sort_by, sort_direction=sort_direction)
    )
    params: dict[str, str] = {"sort_by": sort_by, "sort_direction": sort_direction}
    bodies = await model_bodies(request, models)
    return JSONResponse(page_body(deps.settings.origin, "/v1/models", bodies, next_cursor, params))


@router.api_route(
    "/models",
    methods=["QUERY"],
    response_model=ModelPage,
    openapi_extra={
        "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string", "minLength": 1}}}}
    },
)
async def search_models(
    request: Request, cursor: str | None = None, _: Account = Depends(current_account)
) -> JSONResponse:
    """Public models matching the plain-text body (or the `query` parameter of a `next` link)."""
    raw = await request.body()
    if len(raw) > MAX_QUERY_BYTES:
        raise ApiError(400, "Bad request", f"The search query is longer than {MAX_QUERY_BYTES} bytes")
    query = _search_text(raw.decode("utf-8", errors="replace")) or (request.query_params.get("query") or "").strip()
    if not query:
        raise ApiError(400, "Bad request", "Send the search query as the plain-text request body")
    return await _search_page(request, query, cursor)


def _search_text(body: str) -> str:
    """The query: the body as text, or the JSON string the JavaScript client sends (it JSON-encodes `data`)."""
    text_ = body.strip()
    if text_.startswith('"') and text_.endswith('"') and len(text_) >= 2:
        try:
            decoded = json.loads(text_)
        except ValueError:
            return text_
        if isinstance(decoded, str):
            return decoded.strip()
    return text_


async def _search_page(request: Request, query: str, cursor: str | None) -> JSONResponse:
    if len(query.encode()) > MAX_QUERY_BYTES:
        raise ApiError(400, "Bad request", f"The search query is longer than {MAX_QUERY_BYTES} bytes")
    if "\x00" in query:
        raise ApiError(400, "Bad request", "The search query must not contain NUL characters")
    deps = _deps(request)
    models, next_cursor = await registry_page(lambda: deps.registry.list_models(cursor=cursor or "", query=query))
    # The query travels in the body, so `next` repeats it as a parameter: a GET (how both clients follow
    # `next`) or a QUERY of that URL continues the search.
    return JSONResponse(page_body(deps.settings.origin, "/v1/models", await model_bodies(request, models),
                                  next_cursor, {"query": query}))


@router.post("/models", status_code=201, response_model=Model)
async def create_model(
    body: ModelCreateRequest, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    if not can_access(account, body.owner):
        raise ApiError(403, "Forbidden", f"You cannot create models owned by {body.owner}")
    check_hardware(_deps(request).hardware, body.hardware)
    fields = body.model_dump(exclude_none=True)
    model = await _deps(request).registry.create_model(**fields)
    return JSONResponse((await model_bodies(request, [model]))[0], status_code=201)


@router.get("/models/{owner}/{name}", response_model=Model)
async def get_model(
    owner: str, name: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    model = await visible_model(request, owner, name, account)
    return JSONResponse((await model_bodies(request, [model]))[0])


@router.patch("/models/{owner}/{name}", response_model=Model)
async def update_model(
    owner: str, name: str, body: ModelUpdateRequest, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    await _owned_model(request, owner, name, account)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    model = await _deps(request).registry.update_model(owner, name, changes)
    return JSONResponse((await model_bodies(request, [model]))[0])


@router.delete("/models/{owner}/{name}", status_code=204, response_class=Response)
async def delete_model(
    owner: str, name: str, request: Request, account: Account = Depends(current_account)
) -> Response:
    """Refused (409) while the model has versions: delete those first, as on Replicate."""
    await _owned_model(request, owner, name, account)
    await _deps(request).registry.delete_model(owner, name)
    return Response(status_code=204)


@router.get("/models/{owner}/{name}/readme", response_class=Response,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def get_readme(owner: str, name: str, request: Request, account: Account = Depends(current_account)) -> Response:
    """The latest version's README.md, or else the readme set with PATCH; 404 when there is neither."""
    model = await visible_model(request, owner, name, account)
    text = await handlers.model_readme(_deps(request), model)
    if not text:
        raise not_found(f"{owner}/{name} has no README")
    # Markdown, served as `text/plain` as Replicate's API documents it.
    return Response(text, media_type="text/plain; charset=utf-8")


@router.get("/models/{owner}/{name}/examples", response_model=PredictionPage)
async def list_examples(
    owner: str, name: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    """Predictions marked as the model's examples. Nothing marks predictions as examples yet, so the list is empty."""
    await visible_model(request, owner, name, account)
    return JSONResponse(page_body(_deps(request).settings.origin, "", [], None))


@router.get("/models/{owner}/{name}/versions", response_model=VersionPage)
async def list_versions(
    owner: str, name: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    await visible_model(request, owner, name, account)
    versions = await _deps(request).registry.list_versions(owner, name)
    return JSONResponse(page_body(_deps(request).settings.origin, "", [version_body(v) for v in versions], None))


async def _version_of(request: Request, owner: str, name: str, version_id: str) -> dict[str, Any]:
    # Versions never change; every gateway forgets a deleted one as soon as the registry says so.
    try:
        version = await _deps(request).registry.get_version_cached(version_id)
    except RpcNotFound as exc:
        raise not_found() from exc
    if (version["owner"], version["name"]) != (owner, name):
        raise not_found()
    return version


@router.get("/models/{owner}/{name}/versions/{version_id}", response_model=Version)
async def get_version(
    owner: str, name: str, version_id: str, request: Request, account: Account = Depends(current_account)
) -> JSONResponse:
    # Both at once (`replicate.run("owner/name:version")` asks for the version after every prediction); the
    # model's 404 comes first, as when they ran one after the other.
    outcomes = await asyncio.gather(
        handlers.visible_model(_deps(request), owner, name, account, cached=True),
        _version_of(request, owner, name, version_id), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    version = outcomes[1]
    assert not isinstance(version, BaseException)
    return JSONResponse(version_body(version))


@router.delete("/models/{owner}/{name}/versions/{version_id}", status_code=202, response_class=Response)
async def delete_version(
    owner: str, name: str, version_id: str, request: Request, account: Account = Depends(current_account)
) -> Response:
    """Refused (409) while predictions of the version are still starting or processing."""
    await _owned_model(request, owner, name, account)
    await _version_of(request, owner, name, version_id)
    running = await active_predictions_of_version(_deps(request).engine, version_id)
    if running:
        raise ApiError(409, "Conflict", f"Version {version_id} has {running} prediction(s) still running; "
                       "wait for them to finish or cancel them first")
    await _deps(request).registry.delete_version(owner, name, version_id)
    return Response(status_code=202)


async def gather_visible(request: Request, refs: list[str], account: Account | None) -> list[dict[str, Any]]:
    """The models named `owner/name` that exist and `account` may see, in the given order."""

    async def one(ref: str) -> dict[str, Any] | None:
        owner, _, name = ref.partition("/")
        try:
            return await visible_model(request, owner, name, account)
        except ApiError:
            return None

    found = await asyncio.gather(*(one(ref) for ref in refs))
    return [model for model in found if model is not None]
