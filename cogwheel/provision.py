"""Create every JetStream stream, object store and key-value bucket up front, as NATS's admin user.

Under per-service permissions the runner may not create anything, so what it uses must exist before it
starts; the other services still ensure their streams themselves (harmless when they exist).
"""

from __future__ import annotations

from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, NotFoundError

from libs.blobs import FILES_BUCKET, OUTPUTS_BUCKET, SPILL_BUCKET
from libs.blobs.store import create_bucket
from libs.bus.nats import connect
from libs.bus.subjects import RUNNERS_BUCKET, STREAM_SPILL_BUCKET, VERSION_PACKAGES_BUCKET
from services.runner.settings import RunnerSettings

__all__ = ["provision_nats"]

# The same bucket the runner would create itself: its entries expire after three missed heartbeats.
_HEARTBEAT_TTL = RunnerSettings.model_fields["heartbeat_interval"].default * 3


async def provision_nats(admin_url: str) -> None:
    bus = await connect(admin_url, name="cogwheel-provision", attempts=5, user="", password="")
    try:
        await bus.ensure_streams()
        for bucket in (VERSION_PACKAGES_BUCKET, FILES_BUCKET, OUTPUTS_BUCKET, SPILL_BUCKET, STREAM_SPILL_BUCKET):
            try:
                await bus.js.object_store(bucket)
            except (BucketNotFoundError, NotFoundError):
                await create_bucket(bus.js, bucket)
        try:
            await bus.js.key_value(RUNNERS_BUCKET)
        except (BucketNotFoundError, NotFoundError):
            await bus.js.create_key_value(KeyValueConfig(bucket=RUNNERS_BUCKET, ttl=_HEARTBEAT_TTL))
    finally:
        await bus.close()
