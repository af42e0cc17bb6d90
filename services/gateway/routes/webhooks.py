"""`/v1/webhooks/default/secret` (as Replicate), and two extensions: a prediction's delivery attempts and an
account's delivery summary. The webhook dispatcher owns all three; this module only speaks to it over gRPC."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from libs.rpc import RpcNotFound, create_channel
from services.gateway.adapters.registry_grpc import Account
from services.gateway.adapters.webhooks_grpc import GrpcWebhooksClient
from services.gateway.auth import current_account
from services.gateway.errors import not_found

router = APIRouter(prefix="/v1")

MAX_SUMMARY_HOURS = 24 * 31


def _webhooks(request: Request) -> GrpcWebhooksClient:
    state = request.app.state
    client = getattr(state, "webhooks_client", None)
    if client is None:
        client = GrpcWebhooksClient(create_channel(state.deps.settings.webhooks_addr))
        state.webhooks_client = client
    return client


@router.get("/webhooks/default/secret")
async def get_default_secret(request: Request, account: Account = Depends(current_account)) -> dict[str, str]:
    return {"key": await _webhooks(request).signing_secret(account.username)}


@router.get("/webhooks/summary")
async def get_summary(
    request: Request,
    hours: int = Query(default=24, ge=1, le=MAX_SUMMARY_HOURS),
    account: Account = Depends(current_account),
) -> dict[str, Any]:
    return await _webhooks(request).summary(account.username, hours)


@router.get("/predictions/{prediction_id}/webhooks")
async def list_prediction_webhooks(
    prediction_id: str, request: Request, account: Account = Depends(current_account)
) -> dict[str, Any]:
    await _ensure_owned(request, prediction_id, account)
    return {"results": await _webhooks(request).delivery_attempts(prediction_id, account.username)}


async def _ensure_owned(request: Request, prediction_id: str, account: Account) -> None:
    deps = request.app.state.deps
    view = await deps.projection.get(prediction_id)
    if view is None:
        try:
            view = await deps.scheduler.get_prediction(prediction_id)
        except RpcNotFound as exc:
            raise not_found() from exc
    if view.get("account") != account.username:
        raise not_found()
