"""`python -m services.gateway`: serve the HTTP API."""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from libs import telemetry
from libs.runtime import configure_logging
from services.gateway.app import create_app
from services.gateway.http_protocol import with_header_timeout
from services.gateway.rebuild import rebuild_projections
from services.gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    telemetry.setup("gateway", settings.otlp_endpoint)
    if sys.argv[1:] == ["rebuild-projections"]:
        count = asyncio.run(rebuild_projections(settings))
        print(f"gateway: rebuilt the prediction read model from {count} events")
        return
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower() if settings.log_level.upper() != "INFO" else "warning",
        access_log=False,
        lifespan="on",
        loop="uvloop",  # as every service's (libs.runtime.run_service)
        timeout_keep_alive=max(1, round(settings.keep_alive_timeout)),
        # Request lines and headers: complete within the deadline, and at most 64 KiB.
        http=with_header_timeout(settings.header_read_timeout),
        ssl_certfile=settings.ssl_certfile or None,
        ssl_keyfile=settings.ssl_keyfile or None,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
