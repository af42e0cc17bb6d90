"""Pages share the gateway's URL space with the API: API paths keep answering as the API does."""

from __future__ import annotations

from fastapi.testclient import TestClient

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings


def _client() -> TestClient:
    # No lifespan: these paths are answered before any backing service is needed.
    return TestClient(create_app(GatewaySettings(nats_url="nats://unused", database_url="postgresql://unused")))


def test_unknown_api_paths_are_still_problem_json_404s() -> None:
    client = _client()
    for method, path in (("GET", "/v1/nothing"), ("POST", "/v1/nothing"), ("DELETE", "/v1/models")):
        response = client.request(method, path)
        assert response.headers["content-type"] == "application/problem+json", (method, path)
        assert response.status_code in (404, 405), (method, path)
    assert client.post("/v1/nothing").status_code == 404


def test_static_assets_are_served_from_the_project_and_nothing_else() -> None:
    client = _client()
    script = client.get("/static/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert "fetch(" in script.text
    assert client.get("/static/app.css").status_code == 200
    assert client.get("/static/../settings.py").status_code == 404
    assert client.get("/static/routes.py").status_code == 404


def test_pages_are_not_in_the_api_document() -> None:
    paths = _client().get("/openapi.json").json()["paths"]
    assert all(path.startswith(("/v1/", "/healthz")) for path in paths), sorted(paths)
