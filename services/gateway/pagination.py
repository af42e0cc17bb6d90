"""Replicate's cursor pagination: `{next, previous, results}` with absolute `next` URLs on our own origin."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlencode

from libs.rpc import RpcInvalidArgument
from services.gateway.errors import ApiError

T = TypeVar("T")

INVALID_CURSOR = ApiError(400, "Bad request", "Invalid pagination cursor")


def page_body(
    origin: str, path: str, results: list[Any], next_cursor: str | None, params: dict[str, str] | None = None
) -> dict[str, Any]:
    """The page; `next` repeats `params` (the query that produced it) with the cursor of the following page."""
    next_url = None
    if next_cursor:
        query = {**{k: v for k, v in (params or {}).items() if v and k != "cursor"}, "cursor": next_cursor}
        next_url = f"{origin.rstrip('/')}{path}?{urlencode(query)}"
    return {"next": next_url, "previous": None, "results": results}


async def registry_page(call: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a registry listing call; a cursor it does not recognise is the client's mistake (400)."""
    try:
        return await call()
    except RpcInvalidArgument as exc:
        raise ApiError(400, "Bad request", exc.details() or "Invalid request") from exc


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode()


def decode_cursor(cursor: str, count: int) -> list[str]:
    """The `count` parts of a cursor made by `encode_cursor`; 400 for anything else."""
    try:
        parts = base64.urlsafe_b64decode(cursor.encode("ascii")).decode().split("|", count - 1)
    except (ValueError, UnicodeError, binascii.Error):
        raise INVALID_CURSOR from None
    if len(parts) != count:
        raise INVALID_CURSOR
    return parts
