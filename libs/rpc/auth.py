"""A shared per-installation token on every internal gRPC call: clients send it, servers require it.

The token comes from the caller (``token=``) or from ``COGWHEEL_RPC_TOKEN``; unset means open, which suits
tests and deployments whose network already isolates the services. Health checks stay open so that
orchestrators can probe without the secret.
"""

from __future__ import annotations

import hmac
import os

import grpc
from grpc.aio import Metadata

__all__ = ["TOKEN_ENV", "TOKEN_METADATA_KEY", "TokenClientInterceptor", "TokenServerInterceptor", "rpc_token"]

TOKEN_ENV = "COGWHEEL_RPC_TOKEN"
TOKEN_METADATA_KEY = "cogwheel-rpc-token"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)


def rpc_token(explicit: str | None = None) -> str:
    """``explicit`` if given, else ``COGWHEEL_RPC_TOKEN``; empty means no token."""
    return explicit if explicit is not None else os.environ.get(TOKEN_ENV, "")


class TokenClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Add the installation token to every call's metadata."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        metadata = Metadata.from_tuple(tuple(client_call_details.metadata or ()))
        metadata[TOKEN_METADATA_KEY] = self._token
        return await continuation(client_call_details._replace(metadata=metadata), request)


async def _refuse(request, context):  # type: ignore[no-untyped-def]
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong internal token")


_REFUSED = grpc.unary_unary_rpc_method_handler(_refuse)


class TokenServerInterceptor(grpc.aio.ServerInterceptor):
    """Answer UNAUTHENTICATED, before any other work, to calls without the installation token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    def _authorized(self, metadata: object) -> bool:
        for key, value in metadata or ():  # type: ignore[attr-defined]
            if key == TOKEN_METADATA_KEY:
                given = value.encode() if isinstance(value, str) else bytes(value)
                return hmac.compare_digest(given, self._token)
        return False

    async def intercept_service(self, continuation, handler_call_details):  # type: ignore[no-untyped-def]
        method = handler_call_details.method
        method = method.decode() if isinstance(method, bytes) else method
        if method.startswith(OPEN_PREFIXES) or self._authorized(handler_call_details.invocation_metadata):
            return await continuation(handler_call_details)
        return _REFUSED
