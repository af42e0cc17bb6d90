"""`/v1/account`, `/v1/hardware` and the health check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from libs.hardware import HardwareCatalog, UnknownHardware
from libs.health import broker_check, nats_check, postgres_check, readiness
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import current_account
from services.gateway.errors import ApiError
from services.gateway.schemas import AccountBody, Hardware

router = APIRouter()


def check_hardware(catalog: HardwareCatalog, sku: str) -> str:
    """`sku` if the catalogue has it; else a 422 naming the valid SKUs."""
    try:
        return catalog.require(sku).sku
    except UnknownHardware as exc:
        valid = ", ".join(exc.valid)
        raise ApiError(422, "Input validation failed", f"- hardware: must be one of {valid}\n",
                       invalid_fields=[{"type": "enum", "field": "hardware", "description": f"Must be one of {valid}"}]
                       ) from None


@router.get("/v1/account", response_model=AccountBody, response_model_exclude_unset=True)
async def get_account(account: Account = Depends(current_account)) -> dict[str, Any]:
    return {
        "type": account.type or "user",
        "username": account.username,
        "name": account.name or account.username,
    }


@router.get("/v1/hardware", response_model=list[Hardware])
async def list_hardware(request: Request, _: Account = Depends(current_account)) -> list[dict[str, str]]:
    """The operator's hardware catalogue (COGWHEEL_HARDWARE_CATALOG), in its order."""
    return [{"name": item.name, "sku": item.sku} for item in request.app.state.deps.hardware.hardware]


@router.get("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok", "service": "gateway"}


@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    """200 while NATS and PostgreSQL answer; 503 otherwise (the gateway stays live, it waits for them). NATS is
    checked on both of the gateway's connections: the one it publishes and consumes on, and FastStream's, on
    which token and membership changes arrive (without it, a revoked token would stay cached)."""
    deps = request.app.state.deps
    ok, report = await readiness({"nats": nats_check(deps.bus), "nats_subscribers": broker_check(deps.broker),
                                  "postgres": postgres_check(deps.engine)})
    return JSONResponse({"status": "ready" if ok else "unavailable", "service": "gateway", "checks": report},
                        status_code=200 if ok else 503)
