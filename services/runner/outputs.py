"""Files a model returned are uploaded to the outputs bucket and replaced by host-free output references."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from libs.blobs import OUTPUTS_BUCKET, output_ref, put_blob
from services.runner.adapters.protocol import FILE_KEY

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class OutputError(RuntimeError):
    """A returned file could not be stored."""


def is_file_marker(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(FILE_KEY), str)


class OutputFiles(Protocol):
    """Where a sandboxed model's files are read from: only its own directories (see libs.sandbox)."""

    def read_bytes(self, path: str) -> bytes: ...
    def remove(self, path: str) -> None: ...


class OutputUploader:
    """Stores files under ``<prediction id>/<n>-<filename>`` (n counts the prediction's files from 1)."""

    def __init__(self, js: Any, prediction_id: str) -> None:
        self._js, self._id = js, prediction_id
        # Set for a sandboxed model: the paths it returns are its own view, confined to its directories.
        self.files: OutputFiles | None = None
        self._count = 0
        self._uploaded: set[str] = set()

    async def replace_files(self, value: Any) -> Any:
        """``value`` with each file marker (at any depth) replaced by the uploaded file's reference."""
        if is_file_marker(value):
            return output_ref(await self._upload(value[FILE_KEY]))
        if isinstance(value, list):
            return [await self.replace_files(item) for item in value]
        if isinstance(value, dict):
            return {key: await self.replace_files(item) for key, item in value.items()}
        return value

    async def _upload(self, path: str) -> str:
        self._count += 1
        name = _UNSAFE.sub("_", os.path.basename(path)).strip("_") or "output"
        key = f"{self._id}/{self._count}-{name}"
        try:
            data = await asyncio.to_thread(self.files.read_bytes if self.files else _read_host_file, path)
        except PermissionError as exc:
            raise OutputError(f"output file {os.path.basename(path)!r} cannot be read: {exc}") from None
        except OSError as exc:
            raise OutputError(f"output file {os.path.basename(path)!r} cannot be read: {exc.strerror}") from None
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        await put_blob(self._js, OUTPUTS_BUCKET, key, data, content_type=content_type,
                       metadata={"prediction_id": self._id, "filename": name})
        self._uploaded.add(path)
        return key

    async def cleanup(self) -> None:
        """Remove uploaded files that predict() wrote to the temporary directory (model files stay)."""
        paths, self._uploaded = self._uploaded, set()
        for path in paths:
            await asyncio.to_thread(self.files.remove if self.files else _remove_if_temporary, path)


def _read_host_file(path: str) -> bytes:
    return Path(path).read_bytes()


def _remove_if_temporary(path: str) -> None:
    temp_root = os.path.realpath(tempfile.gettempdir())
    real = os.path.realpath(path)
    if real.startswith(temp_root + os.sep):
        try:
            os.unlink(real)
        except OSError:
            pass
