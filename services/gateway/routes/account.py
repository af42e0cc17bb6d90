"""`/v1/account`, `/v1/hardware` and the health check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from libs.health import nats_check, postgres_check, readiness

from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.schemas import AccountBody, Hardware

router = APIRouter()

HARDWARE = [{"sku": "cpu", "name": "CPU"}]


@router.get("/v1/account", response_model=AccountBody, response_model_exclude_unset=True)
async def get_account(account: Account = Depends(current_account)) -> dict[str, Any]:
    return {
        "type": account.type or "user",
        "username": account.username,
        "name": account.name or account.username,
    }


@router.get("/v1/hardware", response_model=list[Hardware])
async def list_hardware(_: Account = Depends(current_account)) -> list[dict[str, str]]:
    return HARDWARE


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "gateway"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """200 while NATS and PostgreSQL answer; 503 otherwise (the gateway stays live, it waits for them)."""
    deps = request.app.state.deps
    ok, report = await readiness({"nats": nats_check(deps.bus), "postgres": postgres_check(deps.engine)})
    return JSONResponse({"status": "ready" if ok else "unavailable", "service": "gateway", "checks": report},
                        status_code=200 if ok else 503)
