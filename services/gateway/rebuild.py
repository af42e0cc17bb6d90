"""Rebuilding the prediction read model by replaying the scheduler's event stream from JetStream."""

from __future__ import annotations

from nats.js.api import DeliverPolicy
from sqlalchemy import text

from libs.bus.nats import connect
from libs.bus.subjects import GATEWAY_PREDICTIONS_DURABLE, PREDICTION_EVENTS, SCHEDULER_EVENTS
from libs.db import create_engine
from libs.db.migrations import migrate
from libs.events import Envelope
from libs.eventstore import EventStore, Transaction
from libs.eventstore.projections import rebuild_from_log
from services.gateway.bootstrap import MIGRATIONS
from services.gateway.projection import SCHEMA, PredictionProjection
from services.gateway.settings import GatewaySettings
from services.gateway.sharing import PagesProjection, blank_removed_views


async def rebuild_projections(settings: GatewaySettings) -> int:
    """Replay every lifecycle event in one transaction: readers see the old view until the new one is whole."""
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    engine = create_engine(settings.database_url, pool_size=2)
    bus = await connect(settings.nats_url, name="gateway-rebuild")
    try:
        await bus.ensure_streams()
        info = await bus.js.stream_info(SCHEDULER_EVENTS.name)
        last_sequence = info.state.last_seq
        projection = PredictionProjection(EventStore(engine, SCHEMA), bus.js)
        subscription = await bus.js.subscribe(
            PREDICTION_EVENTS, stream=SCHEDULER_EVENTS.name, ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
        )
        count = 0
        async with engine.begin() as conn:
            await conn.execute(text(f"TRUNCATE {SCHEMA}.predictions"))
            await conn.execute(text(f"DELETE FROM {SCHEMA}.tracking WHERE consumer = :consumer"),
                               {"consumer": GATEWAY_PREDICTIONS_DURABLE})
            tx = Transaction(conn, SCHEMA, lambda _event: None)
            while last_sequence:
                try:
                    msg = await subscription.next_msg(timeout=5)
                except TimeoutError:
                    break
                await projection.apply_in(conn, tx, Envelope.from_json(msg.data))
                count += 1
                if msg.metadata.sequence.stream >= last_sequence:
                    break
        await subscription.unsubscribe()
        # Owners' sharing and data removals come from the gateway's own log, and blank the rebuilt views again.
        store = EventStore(engine, SCHEMA)
        count += await rebuild_from_log(store, [PagesProjection()])
        async with engine.begin() as conn:
            await blank_removed_views(conn)
        return count
    finally:
        await bus.close()
        await engine.dispose()

