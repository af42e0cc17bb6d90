"""Values too large for one NATS message travel by reference: stored in an object store, restored by readers.

NATS refuses messages over its payload limit (1 MiB by default), and a refused runner report or outbox row
would be retried forever. So a report or event whose encoded data exceeds ``SAFE_PAYLOAD_BYTES`` has its
large fields (a prediction's output, logs, error, or a progress report's items) moved to the
``cogwheel-spilled`` bucket as one JSON document; the message keeps ``"spilled": "<key>"`` and ``null`` in
those fields. Whoever folds the message (scheduler, gateway read model, webhook dispatcher) restores the
fields first. The bucket is not served over HTTP: unlike output files, a prediction's logs must not be
readable by whoever knows its id.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from nats.js.client import JetStreamContext

from libs.blobs.store import BlobNotFound, delete_blob, get_blob, put_blob
from libs.bus.subjects import SPILL_BUCKET

SPILLED_FIELD = "spilled"
# Half of NATS's default 1 MiB: room for the envelope, headers and the fields that stay inline.
SAFE_PAYLOAD_BYTES = 512 * 1024


def encoded_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), default=str).encode("utf-8", "surrogatepass"))


async def spill_large_fields(
    js: JetStreamContext,
    data: dict[str, Any],
    *,
    key: str,
    fields: Iterable[str],
    limit: int = SAFE_PAYLOAD_BYTES,
    bucket: str = SPILL_BUCKET,
) -> dict[str, Any]:
    """``data`` unchanged when it fits in ``limit`` bytes; else with ``fields`` stored under ``key`` (in
    ``bucket``)."""
    if encoded_size(data) <= limit:
        return data
    moved = {name: data[name] for name in fields if data.get(name) is not None}
    if not moved:
        return data
    payload = json.dumps(moved, separators=(",", ":"), default=str).encode()
    await put_blob(js, bucket, key, payload, content_type="application/json")
    return {**data, **{name: None for name in moved}, SPILLED_FIELD: key}


async def restore_spilled_fields(
    js: JetStreamContext, data: dict[str, Any], *, bucket: str = SPILL_BUCKET
) -> dict[str, Any]:
    """``data`` with the fields it spilled (to ``bucket``) put back (unchanged when it spilled nothing)."""
    key = data.get(SPILLED_FIELD)
    if not key:
        return data
    restored = {name: value for name, value in data.items() if name != SPILLED_FIELD}
    try:
        blob = await get_blob(js, bucket, str(key))
    except BlobNotFound:
        # Removed with the prediction's data at the end of its retention, or expired with a stream: the fields
        # stay null, as removed.
        return restored
    restored.update(json.loads(blob.data))
    return restored


def has_spilled(data: dict[str, Any]) -> bool:
    return bool(data.get(SPILLED_FIELD))


def spilled_keys(prediction_id: str, events: Iterable[Any]) -> list[str]:
    """Keys in ``cogwheel-spilled`` that a prediction's events (envelopes of its log) refer to, and those of the
    runner reports they were decided from: a report that went by reference leads to an event that does too."""
    keys: list[str] = []
    for event in events:
        if not has_spilled(event.data):
            continue
        keys.append(str(event.data[SPILLED_FIELD]))
        causation = getattr(event.metadata, "causation_id", None)
        if causation:
            keys.append(f"{prediction_id}/{causation}")
    return keys


async def delete_spilled(js: JetStreamContext, keys: Iterable[str]) -> None:
    """Delete what ``keys`` name in ``cogwheel-spilled`` (what is gone already is skipped)."""
    for key in keys:
        await delete_blob(js, SPILL_BUCKET, key)
