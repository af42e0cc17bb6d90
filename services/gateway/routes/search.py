"""`GET /v1/search`: public models and collections matching a query. Like Replicate's, it needs no token, so
it shows public models only: a collection lists just the public models in it."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from services.gateway.errors import ApiError
from services.gateway.pagination import registry_page
from services.gateway.routes.models import gather_visible, model_bodies
from services.gateway.schemas import SearchResults

router = APIRouter(prefix="/v1")


@router.get("/search", response_model=SearchResults)
async def search(
    request: Request,
    query: str | None = Query(default=None, max_length=1000),
    limit: int = Query(default=20, ge=1, le=50),
) -> JSONResponse:
    text = (query or "").strip()
    if not text:
        raise ApiError(400, "Bad request", "The query parameter is required")
    registry = request.app.state.deps.registry
    models, _ = await registry_page(lambda: registry.list_models(query=text, limit=limit))
    collections, _ = await registry_page(lambda: registry.list_collections(query=text, limit=limit))
    bodies = await model_bodies(request, [model for model in models if model.get("visibility") == "public"])
    visible = [
        [f"{m['owner']}/{m['name']}" for m in await gather_visible(request, c["models"], None)] for c in collections
    ]
    return JSONResponse(
        {
            "query": query,
            "models": [
                # Ranking is by match position (name, then owner/name, then description); there is no score.
                {"model": body, "metadata": {"generated_description": None, "tags": [], "score": None}}
                for body in bodies
            ],
            "collections": [
                {"name": c["name"], "slug": c["slug"], "description": c["description"], "models": models_in}
                for c, models_in in zip(collections, visible, strict=True)
            ],
            "pages": [],
        }
    )
