"""The gateway's authentication, admin check, rate limit and access rule, over a fake registry."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.testclient import TestClient

from services.gateway import errors
from services.gateway.access import can_access
from services.gateway.adapters.registry_grpc import Account
from services.gateway.auth import OTHER_REQUESTS, PREDICTION_CREATION, current_account
from services.gateway.ratelimit import Limit, RateLimiter
from services.gateway.routes import account, admin

ALICE = Account("alice", "user", "Alice", organizations=("acme",), token_id="t-alice")
ROOT = Account("root", "user", "Root", admin=True, token_id="t-root")


class FakeRegistry:
    def __init__(self) -> None:
        self.tokens: dict[str, Account] = {"cwk_alice": ALICE, "cwk_root": ROOT}

    async def authenticate(self, token: str) -> Account | None:
        return self.tokens.get(token)

    async def list_accounts(self) -> list[dict[str, Any]]:
        return [
            {"type": "user", "username": a.username, "name": a.name, "created_at": "", "admin": a.admin,
             "members": [], "organizations": list(a.organizations)}
            for a in self.tokens.values()
        ]


_creations = APIRouter()


@_creations.post("/v1/predictions", status_code=201)
@_creations.post("/v1/models/{owner}/{name}/predictions", status_code=201)
async def _create(_: Account = Depends(current_account)) -> dict[str, str]:
    return {}


class ManualClock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def client(clock: ManualClock) -> TestClient:
    app = FastAPI()
    errors.install(app)
    app.include_router(account.router)
    app.include_router(admin.router)
    app.include_router(_creations)
    limiter = RateLimiter({PREDICTION_CREATION: Limit(60, 1), OTHER_REQUESTS: Limit(60, 2)}, clock=clock)
    app.state.deps = SimpleNamespace(registry=FakeRegistry(), rate_limiter=limiter)
    return TestClient(app)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic cwk_alice", "Bearer cwk_unknown"])
def test_missing_or_unknown_tokens_get_401_problems(client: TestClient, header: str | None) -> None:
    response = client.get("/v1/account", headers={"Authorization": header} if header is not None else {})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Unauthenticated"


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "Token"])
def test_bearer_and_token_schemes_authenticate(client: TestClient, scheme: str) -> None:
    response = client.get("/v1/account", headers={"Authorization": f"{scheme} cwk_alice"})
    assert response.status_code == 200
    assert response.json()["username"] == "alice"


def test_admin_routes_need_an_admin_token(client: TestClient) -> None:
    refused = client.get("/v1/admin/accounts", headers={"Authorization": "Bearer cwk_alice"})
    assert refused.status_code == 403 and refused.json()["title"] == "Forbidden"
    assert client.get("/v1/admin/accounts").status_code == 401
    allowed = client.get("/v1/admin/accounts", headers={"Authorization": "Bearer cwk_root"})
    assert allowed.status_code == 200
    assert {a["username"] for a in allowed.json()["results"]} == {"alice", "root"}


def test_past_the_limit_requests_get_429_with_retry_after(client: TestClient, clock: ManualClock) -> None:
    alice = {"Authorization": "Bearer cwk_alice"}
    assert [client.get("/v1/account", headers=alice).status_code for _ in range(2)] == [200, 200]
    throttled = client.get("/v1/account", headers=alice)
    assert throttled.status_code == 429
    assert throttled.headers["retry-after"] == "1"
    assert throttled.headers["content-type"].startswith("application/problem+json")
    assert throttled.json()["detail"] == "Request was throttled. Expected available in 1 second."
    # Another token is limited on its own.
    assert client.get("/v1/account", headers={"Authorization": "Bearer cwk_root"}).status_code == 200
    clock.now += 1.0
    assert client.get("/v1/account", headers=alice).status_code == 200


def test_prediction_creation_has_its_own_bucket(client: TestClient) -> None:
    alice = {"Authorization": "Bearer cwk_alice"}
    assert client.post("/v1/predictions", headers=alice).status_code == 201
    assert client.post("/v1/models/acme/m/predictions", headers=alice).status_code == 429
    # Other requests draw on the other bucket.
    assert client.get("/v1/account", headers=alice).status_code == 200


def test_can_access_own_and_organization_resources() -> None:
    assert can_access(ALICE, "alice")
    assert can_access(ALICE, "acme")
    assert not can_access(ALICE, "bob")
    assert not can_access(ALICE, None) and not can_access(ALICE, "")
    assert not can_access(ROOT, "acme")
