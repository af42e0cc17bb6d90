"""``cogwheel push``: package a model directory and send it to a gateway's push endpoint."""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from libs.modelpkg import ModelPackageError, load_cog_config, write_package

__all__ = ["PushError", "PushResult", "push_directory"]

_CHUNK = 1 << 20


class PushError(RuntimeError):
    """The push was refused or failed; the message is what the user needs to read."""


@dataclass(frozen=True)
class PushResult:
    version: dict[str, Any]
    created: bool

    @property
    def version_id(self) -> str:
        return str(self.version["id"])

    @property
    def warnings(self) -> list[str]:
        return list(self.version.get("warnings") or [])


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            yield chunk


def push_directory(
    model_dir: Path, model: str, *, base_url: str, token: str, visibility: str = "private", timeout: float = 1800.0,
    verify: ssl.SSLContext | bool = True,
) -> PushResult:
    """Package ``model_dir`` and push it as a version of ``model`` (``owner/name``).

    Raises:
        PushError: the directory or the model name is refused, or the server could not be reached.
    """
    owner, sep, name = model.partition("/")
    if not sep or not owner or not name or "/" in name:
        raise PushError(f"--model must look like owner/name, not {model!r}")
    try:
        load_cog_config(model_dir)  # fail fast on the obvious, before packaging gigabytes
    except ModelPackageError as exc:
        raise PushError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="cogwheel-push-") as work:
        package = Path(work) / "package.tar.gz"
        try:
            write_package(model_dir, package)
        except ModelPackageError as exc:
            raise PushError(str(exc)) from None
        url = f"{base_url.rstrip('/')}/v1/models/{owner}/{name}/versions"
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/gzip",
            "Content-Length": str(os.path.getsize(package)),
        }
        try:
            response = httpx.post(url, content=_chunks(package), headers=headers, params={"visibility": visibility},
                                  timeout=httpx.Timeout(timeout, connect=10.0), verify=verify)
        except httpx.HTTPError as exc:
            raise PushError(f"cannot reach {base_url}: {exc}") from None
    if response.status_code not in (200, 201):
        raise PushError(_problem_text(response))
    return PushResult(response.json(), created=response.status_code == 201)


def _problem_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        title, detail = body.get("title", ""), body.get("detail", "")
    except ValueError:
        title, detail = "", response.text[:2000]
    return f"push refused ({response.status_code} {title}): {detail}".rstrip(": ")
