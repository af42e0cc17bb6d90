"""`python -m services.billing [rebuild-projections]`."""

from __future__ import annotations

import asyncio
import logging
import sys

from libs import telemetry
from libs.db.migrations import migrate
from libs.eventstore.projections import rebuild_from_log
from libs.eventstore.tracking import keep_tracking_pruned
from libs.health import nats_check, postgres_check, serve_health
from libs.runtime import configure_logging, run_service, run_until_stopped, stop_on_signals
from services.billing.bootstrap import MIGRATIONS, bootstrap, offline_store
from services.billing.projections import PROJECTIONS, SCHEMA
from services.billing.settings import OfflineSettings, Settings
from services.billing.subscribers import consume_prediction_events

log = logging.getLogger("services.billing")


async def serve(settings: Settings) -> None:
    telemetry.setup(settings.service_name, settings.otlp_endpoint)
    deps = await bootstrap(settings)
    stop = asyncio.Event()
    stop_on_signals(stop)
    health = await serve_health(
        settings.service_name, settings.health_port, lambda: not stop.is_set(),
        checks={"nats": nats_check(deps.bus), "postgres": postgres_check(deps.engine)}, host=settings.health_host,
    )
    try:
        await run_until_stopped(stop, consume_prediction_events(deps, stop),
                                keep_tracking_pruned(deps.engine, SCHEMA, settings.tracking_retention_seconds, stop))
    finally:
        if health is not None:
            health.close()
        await deps.close()


async def rebuild(settings: Settings) -> None:
    await migrate(settings.database_url, SCHEMA, MIGRATIONS)
    store = offline_store(settings)
    try:
        count = await rebuild_from_log(store, PROJECTIONS)
        log.info("rebuilt billing projections from %d events", count)
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
