"""The pages' JSON endpoints over fakes: a session and its CSRF token, and the API's own rules behind them
(per-token rate limits, input validation before anything is scheduled, `source: "web"`)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from fastapi.testclient import TestClient

from services.gateway.adapters.registry_grpc import Account
from services.gateway.app import create_app
from services.gateway.auth import OTHER_REQUESTS, PREDICTION_CREATION
from services.gateway.ratelimit import Limit, RateLimiter
from services.gateway.settings import GatewaySettings
from services.gateway.web.sessions import COOKIE

TOKEN = "cwk_alice-token"
ALICE = Account("alice", "user", "Alice", token_id="tok_alice")
SCHEMA = {"components": {"schemas": {"Input": {"type": "object", "required": ["text"], "properties": {
    "text": {"type": "string", "x-order": 0},
    "count": {"type": "integer", "minimum": 1, "maximum": 5, "x-order": 1},
}}}}}
# An id of its own: compiled input validators are cached by version id (versions are immutable), and other tests
# give other schemas to ids such as "a" * 64.
VERSION = {"id": "c0ffee" + "7" * 58, "owner": "alice", "name": "echo", "openapi_schema": SCHEMA}
URL = "/web/api/models/alice/echo/predictions"


class Registry:
    async def authenticate(self, token: str) -> Account | None:
        return ALICE if token == TOKEN else None

    async def get_model(self, owner: str, name: str) -> dict[str, Any]:
        return {"owner": "alice", "name": "echo", "visibility": "public", "latest_version": VERSION}


class Scheduler:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create_prediction(self, **request: Any) -> dict[str, Any]:
        self.created.append(request)
        return {"id": f"p{len(self.created)}", "model": "alice/echo", "version": request["version_id"],
                "account": request["account"], "status": "starting", "source": request["source"],
                "input": request["input"], "output": None, "created_at": "2026-11-30T16:00:00Z"}


class Projection:
    async def apply_created(self, view: dict[str, Any]) -> None:
        pass


def _client(predictions_burst: float) -> tuple[TestClient, Scheduler]:
    settings = GatewaySettings(nats_url="nats://unused", database_url="postgresql://unused",
                               web_session_key="unit-test-key", public_url="http://testserver")
    app = create_app(settings)  # no lifespan: the fakes below are all the backing services
    scheduler = Scheduler()
    app.state.deps = SimpleNamespace(
        settings=settings, registry=Registry(), scheduler=scheduler, projection=Projection(),
        rate_limiter=RateLimiter({PREDICTION_CREATION: Limit(1, predictions_burst), OTHER_REQUESTS: Limit(0, 0)}),
    )
    client = TestClient(app)
    login = client.post("/login", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert login.status_code == 303 and COOKIE in login.cookies
    return client, scheduler


def _csrf(client: TestClient) -> dict[str, str]:
    session = client.app.state.web_sessions.read(client.cookies.get(COOKIE))  # type: ignore[attr-defined]
    return {"X-CSRF-Token": session.csrf}


def test_runs_from_a_page_take_from_the_tokens_prediction_bucket() -> None:
    client, scheduler = _client(predictions_burst=2)
    for _ in range(2):
        made = client.post(URL, json={"input": {"text": "hi"}}, headers=_csrf(client))
        assert made.status_code == 201, made.text
        assert made.json()["source"] == "web"
    throttled = client.post(URL, json={"input": {"text": "hi"}}, headers=_csrf(client))
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert len(scheduler.created) == 2 and {p["source"] for p in scheduler.created} == {"web"}


def test_invalid_input_from_a_page_names_each_field_and_schedules_nothing() -> None:
    client, scheduler = _client(predictions_burst=10)
    answer = client.post(URL, json={"input": {"count": 9}}, headers=_csrf(client))
    assert answer.status_code == 422
    problems = answer.json()["invalid_fields"]
    described = " ".join(p["description"] for p in problems)
    assert "text is required" in described and "less than or equal to 5" in described, problems
    assert scheduler.created == []


def test_runs_need_the_session_and_its_csrf_token() -> None:
    client, scheduler = _client(predictions_burst=10)
    assert client.post(URL, json={"input": {"text": "hi"}}).status_code == 403
    assert client.post(URL, json={"input": {"text": "hi"}},
                       headers={**_csrf(client), "Origin": "https://elsewhere.example"}).status_code == 403
    client.cookies.clear()
    assert client.post(URL, json={"input": {"text": "hi"}}, headers={"X-CSRF-Token": "x"}).status_code == 401
    assert scheduler.created == []
