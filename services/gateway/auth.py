"""Bearer (and legacy `Token`) authentication against the registry."""

from __future__ import annotations

from fastapi import Request

from services.gateway.adapters.registry_grpc import Account
from services.gateway.errors import ApiError

UNAUTHENTICATED = ApiError(401, "Unauthenticated", "You did not pass a valid authentication token")


async def current_account(request: Request) -> Account:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() not in ("bearer", "token") or not token.strip():
        raise UNAUTHENTICATED
    account = await request.app.state.deps.registry.authenticate(token.strip())
    if account is None:
        raise UNAUTHENTICATED
    request.state.account = account
    return account
