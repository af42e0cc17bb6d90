"""The `Idempotency-Key` header of prediction creation (our extension of Replicate's API).

The scheduler stores the key with the prediction in one transaction; the gateway only checks the header and
digests the request, so that a retry with the key and another body is told apart from a true retry.
"""

from __future__ import annotations

import hashlib
import json
import re

from services.gateway.errors import ApiError

MAX_KEY_LENGTH = 255
_VISIBLE_ASCII = re.compile(r"^[\x21-\x7e]+$")


def parse_idempotency_key(header: str | None) -> str | None:
    """The key, or None without the header; 422 for one that is empty, too long or not visible ASCII."""
    if header is None:
        return None
    key = header.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not _VISIBLE_ASCII.match(key):
        raise ApiError(
            422, "Invalid Idempotency-Key",
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} visible ASCII characters",
        )
    return key


def request_fingerprint(path: str, body: bytes, cancel_after: str | None) -> str:
    """A digest of what the request asks for: its path, its JSON body (key order and spacing aside), Cancel-After."""
    try:
        canonical_body: object = json.loads(body or b"null")
    except ValueError:
        canonical_body = body.decode(errors="replace")
    canonical = json.dumps(
        {"path": path, "body": canonical_body, "cancel_after": cancel_after},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
