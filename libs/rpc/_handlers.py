"""Wrap the behaviour of grpc.aio method handlers inside server interceptors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

Behavior = Callable[[Any, Any], Awaitable[Any]]


def wrap_unary_unary(handler: grpc.RpcMethodHandler | None, wrap: Callable[[Behavior], Behavior]) -> Any:
    """Return ``handler`` with its unary-unary behaviour wrapped; other handler kinds pass through."""
    if handler is None or handler.unary_unary is None:
        return handler
    return grpc.unary_unary_rpc_method_handler(
        wrap(handler.unary_unary),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
