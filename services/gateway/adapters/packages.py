"""Reading one file out of a version's package in the versions bucket.

Packages are immutable, so answers are cached.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import tarfile
from collections import OrderedDict

from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError, ObjectDeletedError, ObjectNotFoundError

from libs.modelpkg import versions_bucket

MAX_TEXT_BYTES = 1024 * 1024


class PackageTexts:
    def __init__(self, js: JetStreamContext, size: int = 128) -> None:
        self._js = js
        self._cache: OrderedDict[tuple[str, str], str | None] = OrderedDict()
        self._size = size

    async def read(self, version_id: str, name: str) -> str | None:
        """The text of `name` at the package root, or None when the package lacks it (or is gone)."""
        key = (version_id, name)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        bucket = await versions_bucket(self._js)
        try:
            result = await bucket.get(version_id)
        except (NotFoundError, ObjectNotFoundError, ObjectDeletedError):
            return None
        text = await asyncio.to_thread(_member_text, result.data or b"", name)
        self._cache[key] = text
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return text


def _member_text(package: bytes, name: str) -> str | None:
    try:
        with tarfile.open(fileobj=io.BytesIO(package), mode="r:gz") as tar:
            member = next((m for m in tar.getmembers() if m.isfile() and m.name.lstrip("./") == name), None)
            if member is None or member.size > MAX_TEXT_BYTES:
                return None
            extracted = tar.extractfile(member)
            return extracted.read().decode("utf-8", errors="replace") if extracted else None
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError):
        return None
