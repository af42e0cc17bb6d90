"""grpc.aio server factory with health checking and the tracing and error-mapping interceptors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from opentelemetry import trace

from libs.rpc.auth import TokenServerInterceptor, rpc_token
from libs.rpc.errors import ErrorMap, ErrorMappingServerInterceptor
from libs.rpc.limits import MESSAGE_SIZE_OPTIONS
from libs.rpc.tracing import TracingServerInterceptor

log = logging.getLogger(__name__)

OVERALL = ""  # the health service's name for "the whole server"


@dataclass(frozen=True)
class RpcServer:
    """A created (not yet started) server, the port it is bound to and its health servicer."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer

    async def start(self, services: Sequence[str] = ()) -> None:
        """Start serving and report SERVING for the whole server and each named service."""
        await self.server.start()
        for name in (OVERALL, *services):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC server listening on port %d", self.port)

    async def stop(self, grace: float | None = 5.0) -> None:
        """Report NOT_SERVING, then stop, letting in-flight calls finish within ``grace`` seconds."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)

    async def wait_for_termination(self) -> None:
        """Block until the server stops."""
        await self.server.wait_for_termination()


def create_server(
    port: int = 0,
    host: str = "0.0.0.0",
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    error_map: ErrorMap | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    options: Sequence[tuple[str, object]] = (),
    token: str | None = None,
) -> RpcServer:
    """Create a grpc.aio server on ``host:port`` (0 picks a free port) with grpc.health.v1 registered.

    Register servicers on ``.server`` (``add_XServicer_to_server(servicer, rpc.server)``), then
    ``await rpc.start()``. Interceptors run tracing first, then error mapping, then ``interceptors``.

    Args:
        port: TCP port; 0 binds an ephemeral one, returned as ``RpcServer.port``.
        host: Interface to bind, e.g. "127.0.0.1" in tests.
        interceptors: Extra server interceptors, innermost.
        error_map: Explicit domain exception → status code entries for ErrorMappingServerInterceptor.
        tracer_provider: Tracer provider for server spans; the global one when None.
        options: Extra grpc channel arguments.
        token: Installation token every call but health checks must carry (UNAUTHENTICATED otherwise);
            ``COGWHEEL_RPC_TOKEN`` when None, no check when empty.

    Raises:
        RuntimeError: When the address cannot be bound.
    """
    secret = rpc_token(token)
    # The token check comes first: a refused call costs no span and reaches no handler.
    authentication = [TokenServerInterceptor(secret)] if secret else []
    server = grpc.aio.server(
        interceptors=[
            *authentication,
            TracingServerInterceptor(tracer_provider),
            ErrorMappingServerInterceptor(error_map),
            *interceptors,
        ],
        options=[*MESSAGE_SIZE_OPTIONS, *options],
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    bound = server.add_insecure_port(address)
    if bound == 0:
        raise RuntimeError(f"cannot bind gRPC server to {address}")
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return RpcServer(server=server, port=bound, health=servicer)
