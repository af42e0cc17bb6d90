"""`GET /v1/outputs/{key}`: files models returned, from the outputs bucket.

No token is needed, like Replicate's delivery URLs: keys start with the prediction id, which is unguessable,
and the JavaScript client fetches output files without credentials.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from libs.blobs import OUTPUTS_BUCKET, BlobNotFound, get_blob
from services.gateway.errors import not_found

router = APIRouter(prefix="/v1")


@router.get("/outputs/{key:path}")
async def get_output(key: str, request: Request) -> Response:
    if not key or ".." in key.split("/") or len(key) > 1024:
        raise not_found()
    try:
        blob = await get_blob(request.app.state.deps.bus.js, OUTPUTS_BUCKET, key)
    except BlobNotFound as exc:
        raise not_found() from exc
    filename = blob.metadata.get("filename") or key.rsplit("/", 1)[-1]
    return Response(
        blob.data,
        media_type=blob.content_type,
        headers={
            "Content-Disposition": f'inline; filename="{filename}"',
            # Outputs never change once stored.
            "Cache-Control": "public, max-age=3600, immutable",
        },
    )
