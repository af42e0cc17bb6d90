"""`/v1/files`: uploads (multipart), listing, metadata, download and deletion.

Bytes go straight into the files bucket (key = file id, blob metadata `{"account": owner}` so a runner can
check ownership before using a `/v1/files/<id>` input); the registry records the file (`file.created`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.types import Message

from libs.blobs import FILES_BUCKET, BlobNotFound, delete_blob, get_blob
from libs.rpc import RpcNotFound
from services.gateway import handlers
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.errors import ApiError, not_found
from services.gateway.pagination import page_body, registry_page
from services.gateway.schemas import File, FilePage

router = APIRouter(prefix="/v1")

# Multipart framing and the small form fields around the file part.
_FORM_OVERHEAD = 64 * 1024
_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["content"],
                    "properties": {
                        "content": {"type": "string", "format": "binary"},
                        "filename": {"type": "string", "maxLength": 255},
                        "type": {"type": "string"},
                        "metadata": {"type": "string", "description": "A JSON object"},
                    },
                }
            }
        },
    }
}


def _deps(request: Request) -> Any:
    return request.app.state.deps


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "Payload too large", f"Files must be at most {limit} bytes in size")


def _invalid(field: str, description: str) -> ApiError:
    return ApiError(422, "Input validation failed", f"- {field}: {description}\n",
                    invalid_fields=[{"type": "invalid", "field": field, "description": description}])


async def file_body(request: Request, record: dict[str, Any]) -> dict[str, Any]:
    deps = _deps(request)
    origin = deps.settings.origin
    checksums = {"sha256": record["sha256"]}
    if record["md5"]:
        checksums["md5"] = record["md5"]
    return {
        "id": record["id"],
        "name": record["name"],
        "content_type": record["content_type"],
        "size": record["size"],
        "etag": record["md5"] or record["sha256"],
        "checksums": checksums,
        "metadata": record["metadata"],
        "created_at": record["created_at"],
        "expires_at": record["expires_at"],
        "urls": {
            "get": f"{origin}/v1/files/{record['id']}",
            # A link that works without a token until the file expires (Replicate's signed download form).
            "download": await deps.file_links.link(origin, record["owner"], record["id"],
                                                   _unix(record["expires_at"])),
        },
    }


def _unix(timestamp: str) -> int:
    return int(datetime.fromisoformat(str(timestamp).replace("Z", "+00:00")).timestamp())


def _limited(receive: Callable[[], Awaitable[Message]], limit: int) -> Callable[[], Awaitable[Message]]:
    """`receive` that stops reading once more than `limit` body bytes arrived, without buffering them all."""
    received = 0

    async def guarded() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit - _FORM_OVERHEAD)
        return message

    return guarded


async def _metadata(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    raw = await value.read() if isinstance(value, UploadFile) else value
    try:
        parsed = json.loads(raw or "{}")
    except (ValueError, UnicodeDecodeError):
        raise _invalid("metadata", "must be a JSON object") from None
    if not isinstance(parsed, dict):
        raise _invalid("metadata", "must be a JSON object")
    if "\\u0000" in json.dumps(parsed):  # PostgreSQL cannot store NUL in text or jsonb
        raise _invalid("metadata", "must not contain NUL characters")
    return parsed


def _text_field(form: Any, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) and value else None


@router.post("/files", status_code=201, response_model=File, openapi_extra=_UPLOAD_SCHEMA)
async def create_file(request: Request, account: Account = Depends(current_account)) -> JSONResponse:
    deps = _deps(request)
    limit = deps.settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD:
        raise _too_large(limit)
    guarded = Request(request.scope, _limited(request.receive, limit + _FORM_OVERHEAD))
    async with guarded.form(max_files=2, max_fields=10) as form:
        content = form.get("content")
        if not isinstance(content, UploadFile):
            raise ApiError(422, "Input validation failed", "- content is required\n",
                           invalid_fields=[{"type": "required", "field": "", "description": "content is required"}])
        data = await content.read()
        metadata = await _metadata(form.get("metadata"))
        name = _text_field(form, "filename") or content.filename or "file"
        content_type = _text_field(form, "type") or content.content_type or "application/octet-stream"
    if len(data) > limit:
        raise _too_large(limit)
    if len(name.encode()) > 255:
        raise _invalid("filename", "must be at most 255 bytes")
    record = await handlers.store_file(deps, account, data, name=name, content_type=content_type, metadata=metadata)
    body = await file_body(request, record)
    return JSONResponse(body, status_code=201, headers={"Location": body["urls"]["get"]})


async def _owned_file(request: Request, file_id: str, account: Account) -> dict[str, Any]:
    try:
        record = await _deps(request).registry.get_file(file_id)
    except RpcNotFound as exc:
        raise not_found() from exc
    if not can_access(account, record["owner"]):
        raise not_found()
    return record


async def _signed_file(request: Request, file_id: str, owner: str, expiry: str, signature: str) -> dict[str, Any]:
    if not await _deps(request).file_links.valid(owner, file_id, expiry, signature):
        # Replicate answers a bad or expired signature like a missing file.
        raise not_found("File not found")
    try:
        record = await _deps(request).registry.get_file(file_id)
    except RpcNotFound as exc:
        raise not_found("File not found") from exc
    if record["owner"] != owner:
        raise not_found("File not found")
    return record


@router.get("/files", response_model=FilePage)
async def list_files(
    request: Request, cursor: str | None = None, account: Account = Depends(current_account)
) -> JSONResponse:
    deps = _deps(request)
    records, next_cursor = await registry_page(lambda: deps.registry.list_files(account.username, cursor or ""))
    bodies = [await file_body(request, r) for r in records]
    return JSONResponse(page_body(deps.settings.origin, "/v1/files", bodies, next_cursor))


@router.get("/files/{file_id}", response_model=File)
async def get_file(file_id: str, request: Request, account: Account = Depends(current_account)) -> JSONResponse:
    return JSONResponse(await file_body(request, await _owned_file(request, file_id, account)))


@router.delete("/files/{file_id}", status_code=204, response_class=Response)
async def delete_file(file_id: str, request: Request, account: Account = Depends(current_account)) -> Response:
    deps = _deps(request)
    await _owned_file(request, file_id, account)
    try:
        await deps.registry.delete_file(file_id)
    except RpcNotFound as exc:
        raise not_found() from exc
    await delete_blob(deps.bus.js, FILES_BUCKET, file_id)
    return Response(status_code=204)


@router.get("/files/{file_id}/download", response_class=Response,
            responses={
                200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
            })
async def download_file(
    file_id: str,
    request: Request,
    owner: str | None = None,
    expiry: str | None = None,
    signature: str | None = None,
) -> Response:
    """The bytes, for the owner's token or for a signed link (`owner`, `expiry`, `signature`) without one."""
    if owner is not None or expiry is not None or signature is not None:
        record = await _signed_file(request, file_id, owner or "", expiry or "", signature or "")
    else:
        record = await _owned_file(request, file_id, await current_account(request))
    try:
        blob = await get_blob(_deps(request).bus.js, FILES_BUCKET, file_id)
    except BlobNotFound as exc:
        raise not_found() from exc
    headers = {
        "Content-Disposition": "attachment; filename*=UTF-8''" + quote(record["name"], safe=""),
        "ETag": f'"{record["sha256"]}"',
        # The type is whatever the uploader said; never let a browser reinterpret it on our origin.
        "X-Content-Type-Options": "nosniff",
    }
    return Response(blob.data, media_type=record["content_type"], headers=headers)
