"""Blob storage on a real JetStream object store."""

import uuid

import nats
import pytest

from libs.blobs import BlobNotFound, delete_blob, get_blob, put_blob


async def test_put_get_delete_round_trip(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    bucket = f"blobs-{uuid.uuid4().hex[:8]}"
    try:
        payload = bytes(range(256)) * 2000  # spans several object-store chunks
        stored = await put_blob(js, bucket, "p1/0-out.png", payload, content_type="image/png",
                                metadata={"account": "alice"})
        assert stored.size == len(payload)
        fetched = await get_blob(js, bucket, "p1/0-out.png")
        assert (fetched.data, fetched.content_type, fetched.metadata) == (payload, "image/png", {"account": "alice"})
        assert fetched.sha256 == stored.sha256

        assert await delete_blob(js, bucket, "p1/0-out.png") is True
        with pytest.raises(BlobNotFound):
            await get_blob(js, bucket, "p1/0-out.png")
        assert await delete_blob(js, bucket, "never-stored") is False
    finally:
        await js.delete_object_store(bucket)
        await nc.close()
