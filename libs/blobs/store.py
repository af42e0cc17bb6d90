"""Put, get and delete blobs with a content type and string metadata in a JetStream object store."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from nats.js.api import ObjectMeta, ObjectStoreConfig
from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError, ObjectDeletedError, ObjectNotFoundError
from nats.js.object_store import ObjectStore

from libs.bus.subjects import OBJECT_STORE_TTLS

_META_PREFIX = "cogwheel-meta:"


class BlobNotFound(LookupError):
    """No live blob under that key."""


@dataclass(frozen=True)
class Blob:
    key: str
    data: bytes
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


async def _bucket(js: JetStreamContext, name: str) -> ObjectStore:
    try:
        return await js.object_store(name)
    except (BucketNotFoundError, NotFoundError):
        return await create_bucket(js, name)


async def create_bucket(js: JetStreamContext, name: str) -> ObjectStore:
    """Create the bucket, with its objects' time to live where it has one (`OBJECT_STORE_TTLS`)."""
    ttl = OBJECT_STORE_TTLS.get(name)
    return await js.create_object_store(name, config=ObjectStoreConfig(bucket=name, ttl=ttl) if ttl else None)


async def put_blob(
    js: JetStreamContext,
    bucket: str,
    key: str,
    data: bytes,
    *,
    content_type: str = "application/octet-stream",
    metadata: dict[str, str] | None = None,
) -> Blob:
    """Store ``data`` under ``key`` (replacing what was there); returns what was stored."""
    store = await _bucket(js, bucket)
    # The description carries content type and metadata: it round-trips through every NATS client,
    # unlike object headers whose shape differs between client libraries.
    description = _META_PREFIX + json.dumps({"content_type": content_type, "metadata": metadata or {}})
    await store.put(key, data, meta=ObjectMeta(name=key, description=description))
    return Blob(key=key, data=data, content_type=content_type, metadata=dict(metadata or {}))


async def get_blob(js: JetStreamContext, bucket: str, key: str) -> Blob:
    """The blob under ``key``. Raises BlobNotFound when there is none (or it was deleted)."""
    store = await _bucket(js, bucket)
    try:
        result = await store.get(key)
    except (NotFoundError, ObjectNotFoundError, ObjectDeletedError):
        raise BlobNotFound(f"{bucket}/{key}") from None
    info = result.info
    if info is None or info.deleted:
        raise BlobNotFound(f"{bucket}/{key}")
    content_type, metadata = "application/octet-stream", {}
    description = info.description or ""
    if description.startswith(_META_PREFIX):
        decoded = json.loads(description[len(_META_PREFIX):])
        content_type = decoded.get("content_type") or content_type
        metadata = {str(k): str(v) for k, v in (decoded.get("metadata") or {}).items()}
    return Blob(key=key, data=result.data or b"", content_type=content_type, metadata=metadata)


async def delete_blob(js: JetStreamContext, bucket: str, key: str) -> bool:
    """Delete the blob; False when there was none."""
    store = await _bucket(js, bucket)
    try:
        await store.delete(key)
    except (NotFoundError, ObjectNotFoundError, ObjectDeletedError):
        return False
    return True
