"""`python -m services.registry [rebuild-projections]`: serve the registry over gRPC, or rebuild its read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

from libs import telemetry
from libs.blobs import FILES_BUCKET, delete_blob
from libs.bus.nats import Bus, connect
from libs.health import Check, nats_check, postgres_check, serve_health
from libs.runtime import configure_logging, run_service, run_until_stopped, stop_on_signals
from services.registry import handlers
from services.registry.bootstrap import Deps, bootstrap, migrate_schema, rebuild_projections
from services.registry.rpc import SERVICE_NAME, create_rpc_server
from services.registry.settings import Settings

log = logging.getLogger("services.registry")


async def serve(settings: Settings) -> None:
    if not settings.nats_url:
        raise SystemExit("COGWHEEL_NATS_URL is required to serve the registry")
    stop = asyncio.Event()
    stop_on_signals(stop)
    ready = False
    checks: dict[str, Check] = {}
    health = await serve_health(settings.service_name, settings.health_port, lambda: ready, checks=checks,
                                host=settings.health_host)
    await migrate_schema(settings.database_url)
    bus = await connect(settings.nats_url, name=f"registry-{settings.instance_id or 'main'}")
    await bus.ensure_streams()
    deps = bootstrap(settings, bus=bus)
    checks.update(nats=nats_check(bus), postgres=postgres_check(deps.engine))
    assert deps.relay is not None
    server = create_rpc_server(deps, settings.grpc_port, settings.grpc_host)
    await server.start([SERVICE_NAME])
    ready = True
    try:
        await run_until_stopped(stop, deps.relay.run(stop), purge_expired_files(deps, bus, stop))
    finally:
        ready = False
        await server.stop()
        await bus.close()
        await deps.close()
        if health is not None:
            health.close()


async def purge_expired_files(deps: Deps, bus: Bus, stop: asyncio.Event) -> None:
    """Expired uploads leave the API at `expires_at`; this deletes their bytes from `cogwheel-files` too."""

    async def delete_bytes(file_id: str) -> None:
        await delete_blob(bus.js, FILES_BUCKET, file_id)

    while not stop.is_set():
        try:
            purged = await handlers.purge_expired_files(deps.views, deps.uow, deps.clock, delete_bytes)
            if purged:
                log.info("deleted %d expired file(s)", len(purged))
        except Exception:  # noqa: BLE001 - the sweep must outlive hiccups; expired files stay expired
            log.warning("expired file sweep failed; retrying", exc_info=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), deps.settings.file_purge_interval)


async def rebuild(settings: Settings) -> None:
    await migrate_schema(settings.database_url)
    deps = bootstrap(settings)
    try:
        count = await rebuild_projections(deps)
    finally:
        await deps.close()
    log.info("rebuilt registry read models from %d events", count)


def main(argv: list[str]) -> None:
    settings = Settings()  # type: ignore[call-arg]  # filled from the environment
    configure_logging(settings.service_name, settings.log_level)
    if argv == ["rebuild-projections"]:
        asyncio.run(rebuild(settings))
        return
    if argv:
        raise SystemExit(f"usage: python -m services.registry [rebuild-projections], not {' '.join(argv)}")
    provider = telemetry.setup(settings.service_name, settings.otlp_endpoint)
    try:
        run_service(serve(settings))
    finally:
        if provider is not None:
            provider.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
