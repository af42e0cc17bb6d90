"""`/v1/collections`: operator-defined, ordered groups of models (see `cogwheel collection put`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from libs.rpc import RpcNotFound
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.errors import not_found
from services.gateway.pagination import page_body, registry_page
from services.gateway.routes.models import gather_visible, model_bodies
from services.gateway.schemas import Collection, CollectionPage

router = APIRouter(prefix="/v1")


def summary_body(collection: dict[str, Any]) -> dict[str, Any]:
    return {"name": collection["name"], "slug": collection["slug"], "description": collection["description"]}


@router.get("/collections", response_model=CollectionPage)
async def list_collections(
    request: Request, cursor: str | None = None, _: Account = Depends(current_account)
) -> JSONResponse:
    deps = request.app.state.deps
    found, next_cursor = await registry_page(lambda: deps.registry.list_collections(cursor=cursor or ""))
    return JSONResponse(
        page_body(deps.settings.origin, "/v1/collections", [summary_body(c) for c in found], next_cursor)
    )


@router.get("/collections/{slug}", response_model=Collection)
async def get_collection(slug: str, request: Request, account: Account = Depends(current_account)) -> JSONResponse:
    """The collection with the models in it that the caller may see."""
    try:
        collection = await request.app.state.deps.registry.get_collection(slug)
    except RpcNotFound as exc:
        raise not_found() from exc
    models = await gather_visible(request, collection["models"], account)
    return JSONResponse(
        {
            **summary_body(collection),
            "full_description": collection["full_description"],
            "models": await model_bodies(request, models),
        }
    )
