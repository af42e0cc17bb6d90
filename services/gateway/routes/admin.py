"""`/v1/admin/...`: accounts, organization members and API tokens, for administrators' tokens only.

Not part of Replicate's API; `cogwheel account|token` is a client of these routes.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from libs.rpc import RpcFailedPrecondition
from services.gateway.adapters.registry_grpc import GrpcRegistryClient
from services.gateway.auth import admin_account
from services.gateway.errors import ApiError

router = APIRouter(prefix="/v1/admin", dependencies=[Depends(admin_account)])


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)
    type: Literal["user", "organization"] = "user"
    name: str = Field(default="", max_length=200)
    admin: bool = False
    # Users to add to a new organization.
    members: list[str] = Field(default_factory=list, max_length=1000)


class MemberAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=64)


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", max_length=200)


def _registry(request: Request) -> GrpcRegistryClient:
    return request.app.state.deps.registry


def account_body(account: dict[str, Any]) -> dict[str, Any]:
    body = {key: account[key] for key in ("type", "username", "name", "created_at", "admin")}
    if account["type"] == "organization":
        body["members"] = account["members"]
    else:
        body["organizations"] = account["organizations"]
    return body


def page(results: list[dict[str, Any]]) -> dict[str, Any]:
    return {"next": None, "previous": None, "results": results}


@router.get("/accounts")
async def list_accounts(request: Request) -> dict[str, Any]:
    return page([account_body(a) for a in await _registry(request).list_accounts()])


@router.post("/accounts", status_code=201)
async def create_account(body: AccountCreate, request: Request) -> JSONResponse:
    """Idempotent: an existing account is returned as it is (its type and flags are not changed)."""
    registry = _registry(request)
    if body.members and body.type != "organization":
        raise ApiError(422, "Input validation failed", "members can only be given for an organization")
    account = await registry.ensure_account(body.username, body.type, body.name, admin=body.admin)
    for member in body.members:
        account = await registry.add_member(account["username"], member)
    if body.members:
        account = await registry.get_account(account["username"])
    return JSONResponse(account_body(account), status_code=201)


@router.get("/accounts/{username}")
async def get_account(username: str, request: Request) -> dict[str, Any]:
    return account_body(await _registry(request).get_account(username))


@router.post("/accounts/{organization}/members")
async def add_member(organization: str, body: MemberAdd, request: Request) -> dict[str, Any]:
    return account_body(await _registry(request).add_member(organization, body.username))


@router.delete("/accounts/{organization}/members/{username}")
async def remove_member(organization: str, username: str, request: Request) -> dict[str, Any]:
    return account_body(await _registry(request).remove_member(organization, username))


@router.get("/accounts/{username}/tokens")
async def list_tokens(username: str, request: Request) -> dict[str, Any]:
    return page(await _registry(request).list_tokens(username))


@router.post("/accounts/{username}/tokens", status_code=201)
async def create_token(username: str, body: TokenCreate, request: Request) -> dict[str, Any]:
    return await _registry(request).create_token(username, body.name)


async def change_token(request: Request, action: str, token_id: str, username: str = "") -> dict[str, Any]:
    try:
        return await _registry(request).change_token(action, token_id, username)
    except RpcFailedPrecondition as exc:
        raise ApiError(409, "Conflict", exc.details() or "The token cannot be changed that way") from exc


@router.post("/tokens/{token_id}/disable")
async def disable_token(token_id: str, request: Request) -> dict[str, Any]:
    return await change_token(request, "disable", token_id)


@router.post("/tokens/{token_id}/enable")
async def enable_token(token_id: str, request: Request) -> dict[str, Any]:
    return await change_token(request, "enable", token_id)


@router.post("/tokens/{token_id}/revoke")
async def revoke_token(token_id: str, request: Request) -> dict[str, Any]:
    return await change_token(request, "revoke", token_id)
