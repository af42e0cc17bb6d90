"""Deleting what an ended prediction left in NATS: output files, its Server-Sent Events stream, uploaded inputs,
values stored by reference."""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import Iterator
from typing import Any

import nats.js.errors

from libs.blobs import FILES_BUCKET, OUTPUT_REF_PREFIX, OUTPUTS_BUCKET, delete_blob, delete_spilled
from libs.bus.nats import Bus
from libs.bus.subjects import PREDICTION_STREAMS, prediction_stream
from libs.rpc import RpcNotFound

log = logging.getLogger(__name__)

_OWN_FILE_PATH = re.compile(r"^/v1/files/(?P<id>[A-Za-z0-9_-]+)(?:/download)?/?$")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def output_keys(output: Any) -> list[str]:
    """Keys in `cogwheel-outputs` of the files in an output (at any depth)."""
    return [s.removeprefix(OUTPUT_REF_PREFIX) for s in _strings(output) if s.startswith(OUTPUT_REF_PREFIX)]


def uploaded_file_ids(input: dict[str, Any], public_url: str) -> list[str]:
    """Ids of our own uploads (`{public_url}/v1/files/<id>`) given as inputs."""
    origin = urllib.parse.urlsplit(public_url) if public_url else None
    ids = []
    for value in _strings(input):
        parsed = urllib.parse.urlsplit(value)
        if parsed.scheme not in ("http", "https"):
            continue
        if origin is not None and origin.netloc and (parsed.scheme, parsed.netloc) != (origin.scheme, origin.netloc):
            continue
        match = _OWN_FILE_PATH.match(parsed.path)
        if match:
            ids.append(match.group("id"))
    return ids


class NatsPredictionData:
    def __init__(self, bus: Bus, registry_files: Any, public_url: str) -> None:
        self._bus, self._files, self._public_url = bus, registry_files, public_url

    async def remove(self, prediction_id: str, *, input: dict[str, Any], output: Any, account: str,
                     spilled: list[str]) -> None:
        js = self._bus.js
        for key in output_keys(output):
            await delete_blob(js, OUTPUTS_BUCKET, key)
        try:
            await js.purge_stream(PREDICTION_STREAMS.name, subject=prediction_stream(prediction_id))
        except nats.js.errors.NotFoundError:
            pass
        for file_id in uploaded_file_ids(input, self._public_url):
            await self._remove_upload(file_id, account)
        # Last: a sweep that dies before the end finds the output (and its files) restored from them again.
        await delete_spilled(js, spilled)

    async def _remove_upload(self, file_id: str, account: str) -> None:
        # Only the prediction's own account's uploads could be its inputs (the runner checks the same).
        if await self._files.file_owner(file_id) != account:
            return
        try:
            await self._files.delete_file(file_id)
        except RpcNotFound:
            pass
        await delete_blob(self._bus.js, FILES_BUCKET, file_id)
