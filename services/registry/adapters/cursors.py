"""Opaque pagination cursors: the keyset position (or offset) of the last row served, base64url JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from services.registry.domain.errors import InvalidRequest


def encode_cursor(position: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, length: int) -> list[Any]:
    """The position inside ``cursor``; InvalidRequest for anything this module did not produce."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error):
        raise InvalidRequest("invalid pagination cursor") from None
    if not isinstance(position, list) or len(position) != length or not all(
        isinstance(part, str | int) and not isinstance(part, bool) for part in position
    ):
        raise InvalidRequest("invalid pagination cursor")
    return position
