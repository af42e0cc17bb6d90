"""grpc.aio client channel factory with a default deadline, tracing and typed errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import grpc
from opentelemetry import trace

from libs.rpc.auth import TokenClientInterceptor, rpc_token
from libs.rpc.errors import ErrorMappingClientInterceptor
from libs.rpc.limits import MESSAGE_SIZE_OPTIONS
from libs.rpc.tracing import TracingClientInterceptor

DEFAULT_TIMEOUT_S = 10.0


class DefaultDeadlineInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Give calls made without ``timeout=`` a deadline, so a stuck peer never hangs a caller."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        if client_call_details.timeout is None:
            client_call_details = client_call_details._replace(timeout=self.timeout_s)
        return await continuation(client_call_details, request)


def _reads(method: str) -> bool:
    return method.startswith(("Get", "List", "Authenticate"))


def failover_options(
    service: str, methods: Sequence[str], *, retryable: Callable[[str], bool] = _reads, attempts: int = 3
) -> list[tuple[str, object]]:
    """Channel options for a target of several replicas (``ipv4:a:1,b:2``): calls spread over the replicas
    that are up (round robin skips one whose connection broke), and a read refused with UNAVAILABLE, because
    its replica died under it, is tried again on another. Writes are not retried: the dead replica may have
    committed them. A read made while no replica is reachable (one is starting or restarting) waits for one
    within its deadline instead of failing at once, and a lost connection is tried again within 100 ms to 2 s
    rather than gRPC's default of up to two minutes.

    Args:
        service: full protobuf service name, e.g. ``cogwheel.registry.v1.RegistryService``.
        methods: its method names; those for which ``retryable`` holds get the retry policy.
    """
    config = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "methodConfig": [{
            "name": [{"service": service, "method": method} for method in methods if retryable(method)],
            "waitForReady": True,
            "retryPolicy": {
                "maxAttempts": attempts,
                "initialBackoff": "0.05s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }],
    }
    return [
        ("grpc.service_config", json.dumps(config)),
        ("grpc.enable_retries", 1),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def failover_options_for(descriptor: Any) -> list[tuple[str, object]]:
    """``failover_options`` for a protobuf ``ServiceDescriptor`` (``<module>_pb2.DESCRIPTOR.services_by_name[...]``)."""
    return failover_options(descriptor.full_name, [method.name for method in descriptor.methods])


def create_channel(
    target: str,
    *,
    default_timeout: float | None = DEFAULT_TIMEOUT_S,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    tracer_provider: trace.TracerProvider | None = None,
    options: Sequence[tuple[str, object]] = (),
    token: str | None = None,
) -> grpc.aio.Channel:
    """Open an insecure grpc.aio channel to ``target`` ("host:port").

    Unary-unary calls get a deadline of ``default_timeout`` seconds unless given one, a CLIENT span
    whose context travels as ``traceparent`` metadata, and failures raised as typed
    ``libs.rpc.errors.RpcError`` subclasses (``RpcNotFound`` ...). Close with ``await channel.close()``.

    Args:
        target: Server address, e.g. settings.registry_addr.
        default_timeout: Deadline in seconds for calls without one; None for no default.
        interceptors: Extra client interceptors, innermost.
        tracer_provider: Tracer provider for client spans; the global one when None.
        options: Extra grpc channel arguments.
        token: Installation token sent on every call; ``COGWHEEL_RPC_TOKEN`` when None, none when empty.
    """
    chain: list[grpc.aio.ClientInterceptor] = []
    if default_timeout is not None:
        chain.append(DefaultDeadlineInterceptor(default_timeout))
    chain += [ErrorMappingClientInterceptor(), TracingClientInterceptor(tracer_provider), *interceptors]
    secret = rpc_token(token)
    if secret:
        chain.append(TokenClientInterceptor(secret))
    return grpc.aio.insecure_channel(target, options=[*MESSAGE_SIZE_OPTIONS, *options], interceptors=chain)
