"""API tokens: how secrets are minted and the only form in which they are kept."""

import hashlib
import secrets
import uuid

TOKEN_PREFIX = "cwk_"
_SECRET_CHARS = 40


def new_token() -> str:
    """`cwk_` + 40 url-safe characters (240 random bits)."""
    # token_urlsafe(30) encodes 30 random bytes as exactly 40 base64url characters.
    return TOKEN_PREFIX + secrets.token_urlsafe(30)[:_SECRET_CHARS]


def new_token_id() -> str:
    return uuid.uuid4().hex


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def looks_like_token(token: str) -> bool:
    """Cheap shape check that spares the read model lookups for obvious garbage."""
    return token.startswith(TOKEN_PREFIX) and len(token) == len(TOKEN_PREFIX) + _SECRET_CHARS
