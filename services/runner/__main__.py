"""`python -m services.runner`: run predictions from `runner.jobs.<hardware>` in model worker processes."""

from __future__ import annotations

import asyncio

from libs import telemetry
from libs.health import nats_check, serve_health
from libs.runtime import configure_logging, run_service, run_until_stopped, stop_on_signals
from services.runner.bootstrap import bootstrap, forget_credentials
from services.runner.settings import RunnerSettings


async def serve(settings: RunnerSettings) -> None:
    stop = asyncio.Event()
    stop_on_signals(stop)
    deps = await bootstrap(settings)
    # Liveness while the worker has not failed; readiness adds that NATS answers (the runner keeps no database).
    health = await serve_health(
        "runner", settings.health_port, lambda: deps.worker.ready and not stop.is_set(),
        checks={"nats": nats_check(deps.bus)}, host=settings.health_host,
    )
    try:
        await run_until_stopped(stop, deps.worker.run(stop))
    finally:
        if health is not None:
            health.close()
        await deps.bus.close()


def main() -> None:
    settings = RunnerSettings()
    forget_credentials()  # read once into settings; model processes inherit what is left
    configure_logging("runner", settings.log_level)
    telemetry.setup("runner", settings.otlp_endpoint)
    run_service(serve(settings))


if __name__ == "__main__":
    main()
