"""`python -m services.scheduler`: serve scheduler.v1 over gRPC and record runner reports."""

from __future__ import annotations

import asyncio
import sys

from libs import telemetry
from libs.eventstore.tracking import keep_tracking_pruned
from libs.health import nats_check, postgres_check, serve_health
from libs.rpc import create_server
from libs.runtime import configure_logging, run_service, run_until_stopped, stop_on_signals
from services.scheduler import metrics, rpc
from services.scheduler.bootstrap import SCHEMA, bootstrap
from services.scheduler.settings import SchedulerSettings
from services.scheduler.subscribers import (
    consume_instance_reports,
    consume_runner_events,
    run_control_loop,
    sweep_data_removals,
    sweep_deadlines,
)


async def serve(settings: SchedulerSettings) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    deps = await bootstrap(settings)
    controller = deps.controller
    assert controller is not None  # bootstrap always builds one; tests may build Deps without
    server = create_server(settings.grpc_port)
    service_name = rpc.register(server.server, deps)
    await server.start([service_name])
    health = await serve_health(
        "scheduler", settings.health_port, lambda: not stop.is_set(),
        checks={"nats": nats_check(deps.bus), "postgres": postgres_check(deps.engine)},
        metrics=lambda: metrics.render(controller, deps.store, deps.clock.now()), host=settings.health_host,
    )
    try:
        await run_until_stopped(stop, deps.relay.run(stop), consume_runner_events(deps, stop),
                                sweep_deadlines(deps, stop), sweep_data_removals(deps, stop),
                                consume_instance_reports(deps, stop), run_control_loop(deps, stop),
                                keep_tracking_pruned(deps.engine, SCHEMA, settings.tracking_retention_seconds, stop))
    finally:
        await server.stop()
        if health is not None:
            health.close()
        await deps.bus.close()
        await deps.store.close()
        await deps.engine.dispose()


def main() -> None:
    settings = SchedulerSettings()
    configure_logging("scheduler", settings.log_level)
    telemetry.setup("scheduler", settings.otlp_endpoint)
    if sys.argv[1:] == ["rebuild-projections"]:
        # The scheduler reads its aggregates straight from the log; it keeps no read model to rebuild.
        return
    run_service(serve(settings))


if __name__ == "__main__":
    main()
