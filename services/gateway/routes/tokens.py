"""`/v1/tokens`: an account lists, creates and revokes its own API tokens (an extension of Replicate's API)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.routes.admin import TokenCreate, change_token, page

router = APIRouter(prefix="/v1/tokens")


@router.get("")
async def list_own_tokens(request: Request, account: Account = Depends(current_account)) -> dict[str, Any]:
    return page(await request.app.state.deps.registry.list_tokens(account.username))


@router.post("", status_code=201)
async def create_own_token(
    body: TokenCreate, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    """The secret is in this response only."""
    return await request.app.state.deps.registry.create_token(account.username, body.name)


@router.delete("/{token_id}", status_code=204)
async def revoke_own_token(token_id: str, request: Request, account: Account = Depends(current_account)) -> Response:
    """Revoking the token that made the request is allowed; it stops working right away."""
    await change_token(request, "revoke", token_id, username=account.username)
    return Response(status_code=204)
