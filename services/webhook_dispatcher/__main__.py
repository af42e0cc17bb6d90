"""`python -m services.webhook_dispatcher [rebuild-projections]`."""

from __future__ import annotations

import asyncio
import logging
import sys

from libs import telemetry
from libs.db.migrations import migrate
from libs.eventstore.projections import rebuild_from_log
from libs.eventstore.tracking import keep_tracking_pruned
from libs.health import nats_check, postgres_check, serve_health
from libs.rpc import create_server
from libs.runtime import configure_logging, run_service, run_until_stopped, stop_on_signals
from services.webhook_dispatcher import rpc
from services.webhook_dispatcher.adapters.postgres import SCHEMA
from services.webhook_dispatcher.bootstrap import MIGRATIONS, bootstrap, offline_store
from services.webhook_dispatcher.metrics import setup_metrics
from services.webhook_dispatcher.projections import PROJECTIONS
from services.webhook_dispatcher.settings import OfflineSettings, Settings
from services.webhook_dispatcher.subscribers import consume_prediction_events
from services.webhook_dispatcher.worker import run_senders

log = logging.getLogger("services.webhook_dispatcher")


async def serve(settings: Settings) -> None:
    telemetry.setup(settings.service_name, settings.otlp_endpoint)
    setup_metrics(settings.service_name, settings.otlp_endpoint)
    deps = await bootstrap(settings)
    stop = asyncio.Event()
    stop_on_signals(stop)
    server = create_server(settings.grpc_port)
    await server.start([rpc.register(server.server, deps)])
    health = await serve_health(
        settings.service_name, settings.health_port, lambda: not stop.is_set(),
        checks={"nats": nats_check(deps.bus), "postgres": postgres_check(deps.engine)}, host=settings.health_host,
    )
    try:
        await run_until_stopped(
            stop, deps.relay.run(stop), consume_prediction_events(deps, stop), run_senders(deps, stop),
            keep_tracking_pruned(deps.engine, SCHEMA, settings.tracking_retention_seconds, stop),
        )
    finally:
        await server.stop()
        if health is not None:
            health.close()
        await deps.close()


async def rebuild(settings: Settings) -> None:
    """Rebuild `secrets` and `attempts` from the log; the predictions view and the queue are not derived from it."""
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    store = offline_store(settings)
    try:
        count = await rebuild_from_log(store, PROJECTIONS)
        log.info("replayed %d events into %s", count, ", ".join(p.name for p in PROJECTIONS))
    finally:
        await store.close()
        await store.engine.dispose()


def main(argv: list[str]) -> None:
    if argv[:1] == ["rebuild-projections"]:
        settings: Settings = OfflineSettings()
        configure_logging(settings.service_name, settings.log_level)
        asyncio.run(rebuild(settings))
        return
    settings = Settings()
    configure_logging(settings.service_name, settings.log_level)
    run_service(serve(settings))


if __name__ == "__main__":
    main(sys.argv[1:])
