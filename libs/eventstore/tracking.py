"""Forgetting what consumers applied long ago: the tracking table stays as large as its purpose needs.

A tracking row (consumer, message id) makes a redelivered message a no-op. A message comes again only while
JetStream still holds it unacknowledged (minutes: ``max_deliver`` deliveries of one ack wait each), or when its
producer publishes it again: a relay that died between publishing and deleting re-publishes on restart, and
JetStream's duplicate window (two minutes) drops the copy unless the producer was down longer. Rows older than
the retention (a week by default, far beyond both) can no longer stop anything and are deleted, a bounded
batch at a time so no statement holds locks for long. A producer down for longer than the retention with
unpublished outbox rows is the one case this trades away.
"""

from __future__ import annotations

import asyncio
import logging
import random

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger(__name__)

PRUNE_INTERVAL_SECONDS = 600.0
PRUNE_BATCH = 10_000


async def forget_old_tracking(engine: AsyncEngine, schema: str, retention_seconds: float,
                              batch: int = PRUNE_BATCH) -> int:
    """Delete the tracking rows of ``schema`` older than ``retention_seconds``; returns how many went."""
    if not schema.isidentifier():
        raise ValueError(f"invalid schema name {schema!r}")
    statement = text(
        f"DELETE FROM {schema}.tracking WHERE (consumer, message_id) IN ("
        f"SELECT consumer, message_id FROM {schema}.tracking"
        f" WHERE processed_at < now() - make_interval(secs => :retention) LIMIT :batch)"
    )
    total = 0
    while True:
        async with engine.begin() as conn:
            deleted = (await conn.execute(statement, {"retention": retention_seconds, "batch": batch})).rowcount
        total += deleted
        if deleted < batch:
            return total


async def keep_tracking_pruned(engine: AsyncEngine, schema: str, retention_seconds: float, stop: asyncio.Event,
                               interval: float = PRUNE_INTERVAL_SECONDS) -> None:
    """Run `forget_old_tracking` every ``interval`` (jittered, so replicas spread out) until ``stop``."""
    while not stop.is_set():
        try:
            forgotten = await forget_old_tracking(engine, schema, retention_seconds)
            if forgotten:
                log.info("forgot %d tracking rows older than %.0f s", forgotten, retention_seconds)
        except Exception:  # noqa: BLE001 - pruning is housekeeping: a failed round is retried next interval
            log.warning("pruning tracking rows of %s failed; retrying", schema, exc_info=True)
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval * random.uniform(0.8, 1.2))
        except TimeoutError:
            pass
