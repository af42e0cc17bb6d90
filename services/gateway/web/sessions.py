"""Browser sessions: the API token, encrypted in an HttpOnly, SameSite=Strict cookie, plus a CSRF token.

The cookie is a Fernet token (AES-CBC + HMAC, with its creation time) so page scripts never see the API
token and a tampered or expired cookie is refused. The key is `COGWHEEL_WEB_SESSION_KEY` or, without it, a
random one written once to `<data dir>/gateway/web-session.key`, shared by the gateway processes of an
installation. Logging out clears the cookie; revoking the token ends every session made with it, since each
request authenticates the token again (through the registry's cached answer).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

COOKIE = "cogwheel_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    token: str
    # Sent back by page scripts (header) and forms (hidden field); compared with this value.
    csrf: str


def load_key(configured: str, data_dir: str) -> bytes:
    """A Fernet key: the configured one (any string, hashed to 32 bytes) or the installation's key file."""
    if configured:
        return base64.urlsafe_b64encode(hashlib.sha256(configured.encode()).digest())
    path = Path(data_dir).resolve() / "gateway" / "web-session.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        # O_EXCL: when gateway processes start together, one writes the key and all read the same one.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
    for _ in range(50):
        key = path.read_bytes().strip()
        if key:
            return key
        time.sleep(0.05)  # another process created the file a moment ago and is writing the key
    raise RuntimeError(f"{path} is empty")


class SessionCodec:
    def __init__(self, key: bytes, max_age_seconds: int) -> None:
        self._fernet = Fernet(key)
        self.max_age_seconds = max_age_seconds

    def issue(self, token: str) -> tuple[str, Session]:
        session = Session(token=token, csrf=secrets.token_urlsafe(24))
        payload = json.dumps({"t": session.token, "c": session.csrf}).encode()
        return self._fernet.encrypt(payload).decode(), session

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            payload = json.loads(self._fernet.decrypt(cookie.encode(), ttl=self.max_age_seconds))
            return Session(token=str(payload["t"]), csrf=str(payload["c"]))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None


def csrf_matches(session: Session, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")
