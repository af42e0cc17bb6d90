"""`/v1/tokens`: an account lists, creates and revokes its own API tokens (an extension of Replicate's API)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from services.gateway import handlers
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.routes.admin import TokenCreate, page

router = APIRouter(prefix="/v1/tokens")


@router.get("")
async def list_own_tokens(request: Request, account: Account = Depends(current_account)) -> dict[str, Any]:
    return page(await handlers.list_own_tokens(request.app.state.deps, account))


@router.post("", status_code=201)
async def create_own_token(
    body: TokenCreate, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    """The secret is in this response only."""
    return await handlers.create_own_token(request.app.state.deps, account, body.name)


@router.delete("/{token_id}", status_code=204)
async def revoke_own_token(token_id: str, request: Request, account: Account = Depends(current_account)) -> Response:
    """Revoking the token that made the request is allowed; it stops working right away."""
    await handlers.change_own_token(request.app.state.deps, account, "revoke", token_id)
    return Response(status_code=204)
