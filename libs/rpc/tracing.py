"""gRPC interceptors that carry W3C traceparent in metadata and open `rpc <method>` spans."""

from __future__ import annotations

import grpc
from grpc.aio import Metadata
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from libs.rpc._handlers import wrap_unary_unary

TRACER_NAME = "cogwheel.rpc"
# Health probes would otherwise flood the trace backend with one-span traces.
UNTRACED_PREFIXES = ("/grpc.health.v1.Health/",)


def _method_name(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


def _span_name(method: str) -> str:
    return f"rpc {method.lstrip('/')}"


class TracingClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Open a CLIENT span per unary call and send its context as ``traceparent`` metadata."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        method = _method_name(client_call_details.method)
        if method.startswith(UNTRACED_PREFIXES):
            return await continuation(client_call_details, request)
        with self._tracer.start_as_current_span(
            _span_name(method),
            kind=SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.method": method},
        ) as span:
            metadata = Metadata.from_tuple(tuple(client_call_details.metadata or ()))
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            for key, value in carrier.items():
                metadata[key] = value
            try:
                call = await continuation(client_call_details._replace(metadata=metadata), request)
                await call
            except grpc.aio.AioRpcError as err:
                span.set_attribute("rpc.grpc.status_code", err.code().value[0])
                span.set_status(Status(StatusCode.ERROR, err.details()))
                raise
            span.set_attribute("rpc.grpc.status_code", grpc.StatusCode.OK.value[0])
            return call


class TracingServerInterceptor(grpc.aio.ServerInterceptor):
    """Open a SERVER span per unary call, parented on the caller's ``traceparent`` metadata."""

    def __init__(self, tracer_provider: trace.TracerProvider | None = None) -> None:
        self._tracer = trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider)

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        handler = await continuation(handler_call_details)
        method = _method_name(handler_call_details.method)
        if method.startswith(UNTRACED_PREFIXES):
            return handler
        carrier = {k.lower(): v for k, v in handler_call_details.invocation_metadata or () if isinstance(v, str)}
        tracer = self._tracer

        def wrap(behavior):  # type: ignore[no-untyped-def]
            async def traced(request, context):  # type: ignore[no-untyped-def]
                with tracer.start_as_current_span(
                    _span_name(method),
                    context=propagate.extract(carrier),
                    kind=SpanKind.SERVER,
                    attributes={"rpc.system": "grpc", "rpc.method": method},
                ) as span:
                    try:
                        return await behavior(request, context)
                    finally:
                        code = context.code()
                        if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
                            span.set_attribute("rpc.grpc.status_code", code.value[0])
                            span.set_status(Status(StatusCode.ERROR, context.details() or None))

            return traced

        return wrap_unary_unary(handler, wrap)
