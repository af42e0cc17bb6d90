"""File inputs: URLs, `data:` URIs and our own `/v1/files/<id>` URLs become local files before predict().

Downloads are bounded in size and time and go through the address guard (`libs.netguard`): only public
addresses (plus `COGWHEEL_DOWNLOAD_ALLOWED_NETWORKS`), checked after DNS resolution and again on every
redirect, and never with credentials taken from the URL. An uploaded file is read straight from the files
bucket (never over HTTP) and only for the account that uploaded it (the job carries the prediction's account).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import mimetypes
import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from libs.blobs import FILES_BUCKET, BlobNotFound, get_blob
from libs.netguard import DestinationRefused, Network, guarded_client, guarded_get

_OWN_FILE_PATH = re.compile(r"^/v1/files/(?P<id>[A-Za-z0-9_-]+)(?:/download)?/?$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 64 * 1024


class InputError(ValueError):
    """An input cannot be prepared; the message is shown as the prediction's error."""


@dataclass(frozen=True)
class FileInputLimits:
    max_bytes: int = 100 * 1024 * 1024
    timeout: float = 60.0
    # Networks downloads may reach although not public (none by default: not even the platform's own ports).
    allowed_networks: tuple[Network, ...] = ()


class FileInputResolver:
    """Replaces every URL given for a Path/File input by the path of a local copy under ``workdir``."""

    def __init__(self, js: Any, limits: FileInputLimits, *, public_url: str = "") -> None:
        self._js, self._limits = js, limits
        origin = urllib.parse.urlsplit(public_url) if public_url else None
        self._own_origin = (origin.scheme, origin.netloc) if origin and origin.netloc else None

    async def resolve(
        self, values: dict[str, Any], file_inputs: Iterable[str], *, account: str, workdir: Path
    ) -> dict[str, Any]:
        resolved = dict(values)
        counter = iter(range(1, 1 << 30))
        for name in file_inputs:
            if name not in values or values[name] is None:
                continue
            value = values[name]
            if isinstance(value, list):
                resolved[name] = [await self._one(name, item, account, workdir, next(counter)) for item in value]
            else:
                resolved[name] = await self._one(name, value, account, workdir, next(counter))
        return resolved

    async def _one(self, name: str, value: Any, account: str, workdir: Path, n: int) -> str:
        if not isinstance(value, str):
            raise InputError(f"{name}: expected a URL (https, http or data), got {type(value).__name__}")
        parsed = urllib.parse.urlsplit(value)
        scheme = parsed.scheme.lower()
        if scheme == "data":
            data, content_type = self._decode_data_uri(name, value)
            filename = "file" + (mimetypes.guess_extension(content_type or "") or "")
        elif scheme in ("http", "https"):
            file_id = self._own_file_id(parsed)
            if file_id is not None:
                data, filename = await self._uploaded(name, file_id, account)
            else:
                data, filename = await self._download(name, value, parsed)
        else:
            raise InputError(f"{name}: {_shown(value)!r} is not a URL; give an https, http or data URL")
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / f"{n}-{_safe_name(filename)}"
        await asyncio.to_thread(path.write_bytes, data)
        return str(path)

    def _own_file_id(self, parsed: urllib.parse.SplitResult) -> str | None:
        match = _OWN_FILE_PATH.match(parsed.path)
        if match is None:
            return None
        if self._own_origin is not None and (parsed.scheme.lower(), parsed.netloc.lower()) != self._own_origin:
            return None
        return match.group("id")

    async def _uploaded(self, name: str, file_id: str, account: str) -> tuple[bytes, str]:
        try:
            blob = await get_blob(self._js, FILES_BUCKET, file_id)
        except BlobNotFound:
            blob = None
        # Another account's file is reported exactly like a missing one: its existence is not revealed.
        if blob is None or blob.metadata.get("account") != account:
            raise InputError(f"{name}: file {file_id} not found")
        if blob.size > self._limits.max_bytes:
            raise InputError(f"{name}: file {file_id} is larger than the limit of {_size(self._limits.max_bytes)}")
        filename = blob.metadata.get("filename") or blob.metadata.get("name") or file_id
        return blob.data, filename

    def _decode_data_uri(self, name: str, value: str) -> tuple[bytes, str]:
        header, sep, payload = value[5:].partition(",")
        if not sep:
            raise InputError(f"{name}: malformed data URI")
        content_type = header.split(";", 1)[0] or "text/plain"
        if len(payload) > self._limits.max_bytes * 4 // 3 + 4:
            raise InputError(f"{name}: data URI is larger than the limit of {_size(self._limits.max_bytes)}")
        try:
            if header.endswith(";base64"):
                data = base64.b64decode(payload, validate=False)
            else:
                data = urllib.parse.unquote_to_bytes(payload)
        except (binascii.Error, ValueError) as exc:
            raise InputError(f"{name}: malformed data URI: {exc}") from None
        if len(data) > self._limits.max_bytes:
            raise InputError(f"{name}: data URI is larger than the limit of {_size(self._limits.max_bytes)}")
        return data, content_type

    async def _download(self, name: str, url: str, parsed: urllib.parse.SplitResult) -> tuple[bytes, str]:
        shown = _shown(url)
        limit = self._limits.max_bytes
        try:
            async with asyncio.timeout(self._limits.timeout):
                client = guarded_client(self._limits.allowed_networks, timeout=self._limits.timeout,
                                        purpose="file inputs")
                async with client, guarded_get(client, url, headers={"User-Agent": "cogwheel-runner"}) as response:
                    if response.status_code >= 400:
                        raise InputError(f"{name}: download of {shown} failed: HTTP {response.status_code}")
                    declared = response.headers.get("content-length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise InputError(f"{name}: download of {shown} is larger than the limit of {_size(limit)}")
                    chunks: list[bytes] = []
                    received = 0
                    async for chunk in response.aiter_bytes(_CHUNK):
                        received += len(chunk)
                        if received > limit:
                            raise InputError(
                                f"{name}: download of {shown} is larger than the limit of {_size(limit)}"
                            )
                        chunks.append(chunk)
                    content_type = response.headers.get("content-type", "").split(";")[0].strip()
        except TimeoutError:
            raise InputError(
                f"{name}: download of {shown} did not finish within {self._limits.timeout:g} seconds"
            ) from None
        except DestinationRefused as exc:
            raise InputError(f"{name}: download of {shown} refused: {exc}") from None
        except httpx.HTTPError as exc:
            raise InputError(f"{name}: download of {shown} failed: {type(exc).__name__}: {exc}") from None
        filename = urllib.parse.unquote(parsed.path.rsplit("/", 1)[-1]) or "file"
        if "." not in filename and content_type:
            filename += mimetypes.guess_extension(content_type) or ""
        return b"".join(chunks), filename


def _shown(url: str) -> str:
    """A URL without its query string and credentials, which may hold tokens."""
    if url.startswith("data:"):
        return url[:32] + "…"
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


def _safe_name(filename: str) -> str:
    cleaned = _UNSAFE.sub("_", filename).strip("._") or "file"
    return cleaned[-100:]


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.0f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"
