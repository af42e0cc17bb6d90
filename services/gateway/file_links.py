"""Signed file download links, as Replicate signs them: `GET /v1/files/{id}/download?owner&expiry&signature`.

`signature` is the base64 HMAC-SHA256 of `"{owner} {id} {expiry}"` with the Files API signing secret; a valid,
unexpired signature is the whole authorisation, so the link can be handed to someone without a token. The
secret lives in the gateway's schema, created by the first replica that needs it, so every replica checks
every other replica's links.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from urllib.parse import urlencode

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

SECRET_NAME = "files"


class FileLinkSigner:
    def __init__(self, engine: AsyncEngine, schema: str, configured: str = "") -> None:
        self._engine, self._schema = engine, schema
        self._key: bytes | None = configured.encode() if configured else None

    async def _secret(self) -> bytes:
        if self._key is None:
            async with self._engine.begin() as conn:
                await conn.execute(
                    text(f"INSERT INTO {self._schema}.signing_secrets (name, secret) VALUES (:name, :secret)"
                         " ON CONFLICT (name) DO NOTHING"),
                    {"name": SECRET_NAME, "secret": secrets.token_bytes(32)},
                )
                row = (await conn.execute(
                    text(f"SELECT secret FROM {self._schema}.signing_secrets WHERE name = :name"),
                    {"name": SECRET_NAME},
                )).one()
            self._key = bytes(row.secret)
        return self._key

    async def signature(self, owner: str, file_id: str, expiry: int) -> str:
        digest = hmac.new(await self._secret(), f"{owner} {file_id} {expiry}".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    async def link(self, origin: str, owner: str, file_id: str, expiry: int) -> str:
        query = urlencode({"owner": owner, "expiry": expiry, "signature": await self.signature(owner, file_id, expiry)})
        return f"{origin.rstrip('/')}/v1/files/{file_id}/download?{query}"

    async def valid(self, owner: str, file_id: str, expiry: str, signature: str, *, now: float | None = None) -> bool:
        """True for a signature of these values whose expiry has not passed (standard or URL-safe base64)."""
        if not expiry.isdigit() or int(expiry) < (time.time() if now is None else now):
            return False
        try:
            given = base64.b64decode(signature.replace("-", "+").replace("_", "/").replace(" ", "+") + "==")
        except (binascii.Error, ValueError):
            return False
        expected = base64.b64decode(await self.signature(owner, file_id, int(expiry)))
        return hmac.compare_digest(given, expected)
