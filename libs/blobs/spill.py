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

from libs.blobs.store import get_blob, put_blob
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
) -> dict[str, Any]:
    """``data`` unchanged when it fits in ``limit`` bytes; else with ``fields`` stored under ``key``."""
    if encoded_size(data) <= limit:
        return data
    moved = {name: data[name] for name in fields if data.get(name) is not None}
    if not moved:
        return data
    payload = json.dumps(moved, separators=(",", ":"), default=str).encode()
    await put_blob(js, SPILL_BUCKET, key, payload, content_type="application/json")
    return {**data, **{name: None for name in moved}, SPILLED_FIELD: key}


async def restore_spilled_fields(js: JetStreamContext, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with the fields it spilled put back (unchanged when it spilled nothing)."""
    key = data.get(SPILLED_FIELD)
    if not key:
        return data
    blob = await get_blob(js, SPILL_BUCKET, str(key))
    restored = {name: value for name, value in data.items() if name != SPILLED_FIELD}
    restored.update(json.loads(blob.data))
    return restored


def has_spilled(data: dict[str, Any]) -> bool:
    return bool(data.get(SPILLED_FIELD))
