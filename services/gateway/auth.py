"""Bearer (and legacy `Token`) authentication against the registry, per-token rate limits, admin checks."""

from __future__ import annotations

from fastapi import Depends, Request

from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth_failures import FailedAuthThrottle
from services.gateway.errors import ApiError
from services.gateway.ratelimit import Limit, RateLimiter
from services.gateway.settings import GatewaySettings

UNAUTHENTICATED = ApiError(401, "Unauthenticated", "You did not pass a valid authentication token")
FORBIDDEN = ApiError(403, "Forbidden", "This endpoint needs an administrator's API token")

PREDICTION_CREATION = "predictions"
OTHER_REQUESTS = "requests"


def rate_limiter(settings: GatewaySettings) -> RateLimiter:
    return RateLimiter(
        {
            PREDICTION_CREATION: Limit(
                settings.rate_limit_predictions_per_minute, settings.rate_limit_predictions_burst
            ),
            OTHER_REQUESTS: Limit(settings.rate_limit_requests_per_minute, settings.rate_limit_requests_burst),
        }
    )


def _request_kind(request: Request) -> str:
    # /v1/predictions, /v1/models/{o}/{n}/predictions, /v1/deployments/{o}/{n}/predictions
    if request.method == "POST" and request.url.path.rstrip("/").endswith("/predictions"):
        return PREDICTION_CREATION
    return OTHER_REQUESTS


def _enforce_rate_limit(request: Request, account: Account) -> None:
    limiter: RateLimiter | None = getattr(request.app.state.deps, "rate_limiter", None)
    if limiter is None:
        return
    decision = limiter.take(account.token_id or account.username, _request_kind(request))
    if not decision.allowed:
        seconds = decision.retry_after
        raise ApiError(
            429,
            "Too many requests",
            f"Request was throttled. Expected available in {seconds} second{'s' if seconds != 1 else ''}.",
            headers={"Retry-After": str(seconds)},
        )


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def enforce_rate_limit(request: Request, account: Account) -> None:
    """Take one request from the token's bucket for this kind of request, or raise 429."""
    _enforce_rate_limit(request, account)


async def authenticate_counted(request: Request, token: str, *, count_failure: bool) -> Account | None:
    """The account of `token`, with failed authentications throttled per client address.

    While the address is over its limit, only a token that authenticated moments ago (cached) is accepted and
    anything else is refused with 429 before the registry is asked. A token that does not authenticate counts
    as a failure when `count_failure` (something was presented). Every way of presenting a token (the API's
    header, the web interface's login form) goes through here, so none of them guesses faster than another.
    """
    registry = request.app.state.deps.registry
    throttle: FailedAuthThrottle | None = getattr(request.app.state, "auth_throttle", None)
    address = _client_address(request)
    if throttle is not None and (seconds := throttle.retry_after(address)):
        known = getattr(registry, "known_account", None)
        account = known(token) if known is not None and token else None
        if account is None:
            raise ApiError(
                429, "Too many requests",
                f"Too many failed authentications from your address. Try again in {seconds} "
                f"second{'s' if seconds != 1 else ''}.",
                headers={"Retry-After": str(seconds)},
            )
        return account
    account = await registry.authenticate(token) if token else None
    if account is None and throttle is not None and count_failure:
        throttle.record_failure(address)
    return account


async def current_account(request: Request) -> Account:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() in ("bearer", "token") else ""
    account = await authenticate_counted(request, token, count_failure=bool(header))
    if account is None:
        raise UNAUTHENTICATED
    request.state.account = account
    _enforce_rate_limit(request, account)
    return account


async def admin_account(account: Account = Depends(current_account)) -> Account:
    if not account.admin:
        raise FORBIDDEN
    return account
