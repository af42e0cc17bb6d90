"""Hostile input against the running services (one small stack): SSRF through a file input, bad bodies and
headers, a stalled request, a flood of bad tokens, the stream URL's token, search privacy, what a push answers
about another account's private model, server paths in push errors, and an output far beyond NATS's message
limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from libs.modelpkg import build_package
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import create_channel
from libs.testing.polling import wait_until

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PREDICTORS = ROOT / "tests" / "fixtures" / "predictors"
TERMINAL = ("succeeded", "failed", "canceled")
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def platform_replicas() -> dict[str, int]:
    return {"scheduler": 1, "runner": 1, "gateway": 1}


@pytest.fixture(scope="module")
def platform_env() -> dict[str, str]:
    return {
        "COGWHEEL_BODY_READ_TIMEOUT": "2",
        "COGWHEEL_HEADER_READ_TIMEOUT": "2",
        "COGWHEEL_AUTH_FAILURE_LIMIT": "5",
        "COGWHEEL_AUTH_FAILURE_WINDOW_SECONDS": "4",
    }


@pytest.fixture(scope="module")
async def versions(platform: Any) -> dict[str, str]:
    files, big = await asyncio.gather(
        platform.push("cogwheel", "kitchen-sink", PREDICTORS / "kitchen_sink"),
        platform.push("cogwheel", "big-output", PREDICTORS / "big_output"),
    )
    return {"files": files, "big": big}


@pytest.fixture
async def client(platform: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as http:
        yield http


@pytest.fixture
def internal_server() -> Iterator[tuple[str, list[str]]]:
    """Stands for a service on the platform's own network."""
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"secret")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


async def _finished(client: httpx.AsyncClient, prediction_id: str, timeout: float = 60) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/predictions/{prediction_id}")).json()
        return body if body["status"] in TERMINAL else None

    return await wait_until(probe, timeout=timeout, interval=0.2)


def _problem(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == response.status_code and body["detail"]
    return body


async def test_file_inputs_cannot_reach_the_platform_network(
    client: httpx.AsyncClient, platform: Any, versions: dict[str, str], internal_server: tuple[str, list[str]]
) -> None:
    address, hits = internal_server
    port = address.rsplit(":", 1)[1]
    urls = [
        f"http://{address}/x", f"http://localhost:{port}/x", f"http://2130706433:{port}/x",
        f"http://0x7f000001:{port}/x", f"http://[::ffff:127.0.0.1]:{port}/x", f"{platform.stack.base_url}/healthz",
        f"http://user:pass@{address}/x",
    ]
    created = []
    for url in urls:
        response = await client.post("/v1/predictions", json={"version": versions["files"],
                                                               "input": {"text": "hi", "document": url}})
        assert response.status_code == 201, response.text
        created.append(response.json()["id"])
    for prediction_id, url in zip(created, urls, strict=True):
        body = await _finished(client, prediction_id)
        assert body["status"] == "failed", (url, body)
        assert "refused" in body["error"] and "secret" not in json.dumps(body), (url, body["error"])
    assert hits == []


async def test_bad_bodies_and_headers_are_4xx(client: httpx.AsyncClient, versions: dict[str, str]) -> None:
    version = versions["files"]
    ok = {"text": "x", "document": "data:,hi"}
    _problem(await client.get("/v1/predictions/a%00b"), 400)
    for raw in ('{"input": {"text": "a\\u0000b"}}', '{"input": {"text": "\\udc00"}}',
                '{"input": {"text": "x", "number": NaN}}', '{"input": {"text": "x", "ratio": 1e400}}',
                '{"input": ' + "[" * 2100 + "]" * 2100 + "}"):
        response = await client.post(
            "/v1/predictions", content=raw.replace('{"input"', f'{{"version": "{version}", "input"', 1),
            headers={"Content-Type": "application/json"},
        )
        _problem(response, 400, 422)
    too_big = await client.post(
        "/v1/predictions", json={"version": version, "input": {**ok, "text": "x" * (600 * 1024)}}
    )
    assert "at most 524288 bytes" in _problem(too_big, 413)["detail"]
    _problem(await client.post("/v1/predictions", json={"version": version, "input": ok},
                               headers={"Cancel-After": "9" * 5000}), 400, 422)
    waited = await client.post("/v1/predictions", json={"version": version, "input": ok},
                               headers={"Prefer": "wait=" + "9" * 5000})
    assert waited.status_code == 201 and waited.headers["Preference-Applied"] == "wait=60"


async def test_a_stalled_request_is_cut(platform: Any) -> None:
    port = int(platform.stack.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST /v1/predictions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + platform.token.encode() + b"\r\nContent-Length: 100\r\n\r\n{\"inp"
        )
        await writer.drain()
        started = time.monotonic()
        answer = await asyncio.wait_for(reader.read(4096), 30)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert time.monotonic() - started < 15
    finally:
        writer.close()


async def test_trickled_headers_are_cut(platform: Any) -> None:
    port = int(platform.stack.base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(b"GET /v1/account HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        closed = False
        while time.monotonic() - started < 20:
            with contextlib.suppress(ConnectionError):
                writer.write(b"X-Slow: 1\r\n")  # a header line a second: never complete
                await writer.drain()
            try:
                if await asyncio.wait_for(reader.read(1024), 1) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
                break
        assert closed and time.monotonic() - started < 10
    finally:
        writer.close()
    async with httpx.AsyncClient(base_url=platform.stack.base_url, timeout=30) as http:
        assert (await http.get("/healthz")).status_code == 200


async def test_outputs_beyond_the_nats_message_limit_succeed(
    client: httpx.AsyncClient, versions: dict[str, str]
) -> None:
    response = await client.post("/v1/predictions", json={"version": versions["big"], "input": {"size": 3 * MIB}})
    assert response.status_code == 201, response.text
    body = await _finished(client, response.json()["id"], timeout=90)
    assert body["status"] == "succeeded", body["error"]
    assert body["output"] == ["x" * 3 * MIB]


async def test_the_stream_needs_its_token(client: httpx.AsyncClient, platform: Any, versions: dict[str, str]) -> None:
    created = (await client.post("/v1/predictions", json={"version": versions["big"],
                                                          "input": {"size": 10}})).json()
    stream_url = created["urls"]["stream"]
    bare = stream_url.split("?", 1)[0]
    assert "?token=" in stream_url and all(created["id"] in url for url in created["urls"].values())
    async with httpx.AsyncClient(timeout=30) as anonymous:
        assert (await anonymous.get(bare)).status_code == 404
        assert (await anonymous.get(bare + "?token=guess")).status_code == 404
        async with anonymous.stream("GET", stream_url) as response:
            assert response.status_code == 200
            text = ""
            async for chunk in response.aiter_text():
                text += chunk
                if "event: done" in text:
                    break
        assert "x" * 10 in text
    async with client.stream("GET", bare) as owner:  # the owner's API token is enough
        assert owner.status_code == 200


async def test_search_without_a_token_shows_only_public_models(platform: Any) -> None:
    channel = create_channel(platform.stack.registry_addr, default_timeout=30)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await registry.CreateModel(pb.CreateModelRequest(owner="cogwheel", name="hidden-gem", visibility="private"))
        await registry.PutCollection(pb.PutCollectionRequest(
            slug="isolation-picks", name="Isolation picks", description="isolation picks",
            models=["cogwheel/hello-world", "cogwheel/hidden-gem"],
        ))
    finally:
        await channel.close()
    async with httpx.AsyncClient(base_url=platform.stack.base_url, timeout=30) as anonymous:
        found = (await anonymous.get("/v1/search", params={"query": "isolation picks"})).json()
        hidden = (await anonymous.get("/v1/search", params={"query": "hidden-gem"})).json()
    assert [c["models"] for c in found["collections"]] == [["cogwheel/hello-world"]]
    assert "hidden-gem" not in json.dumps(found) and hidden["models"] == []


async def _user_token(platform: Any, username: str) -> str:
    channel = create_channel(platform.stack.registry_addr, default_timeout=30)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await registry.EnsureAccount(pb.EnsureAccountRequest(username=username, type="user"))
        return str((await registry.CreateToken(pb.CreateTokenRequest(username=username, name="test"))).token)
    finally:
        await channel.close()


async def _push(http: httpx.AsyncClient, token: str, model: str, package: bytes) -> httpx.Response:
    return await http.post(f"/v1/models/{model}/versions", content=package, timeout=300,
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "application/gzip"})


async def test_another_accounts_private_model_stays_unknown(platform: Any, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    alice, bob = f"alice-{suffix}", f"bob-{suffix}"
    alice_token, bob_token = await _user_token(platform, alice), await _user_token(platform, bob)
    model_dir = tmp_path / "confidential"
    shutil.copytree(ROOT / "examples" / "hello-world", model_dir)
    (model_dir / "marker.txt").write_text(suffix)  # content, hence version id, of its own
    package = build_package(model_dir).data
    private = f"{alice}/confidential-{suffix}"
    async with httpx.AsyncClient(base_url=platform.stack.base_url, timeout=60) as http:
        created = await _push(http, alice_token, private, package)
        assert created.status_code == 201, created.text
        # The same content pushed by another account is refused without naming where it already is.
        refused = await _push(http, bob_token, f"{bob}/copy", package)
        detail = _problem(refused, 409)["detail"]
        assert "another model" in detail and alice not in refused.text and "confidential" not in refused.text
        # The owner is told which of her models holds it: the check itself names models to those who may see.
        own = await _push(http, alice_token, f"{alice}/again", package)
        assert private in _problem(own, 409)["detail"]
        # Nothing else Bob can ask names it either: reads, listings and searches, with his token or none.
        as_bob = {"Authorization": f"Bearer {bob_token}"}
        assert (await http.get(f"/v1/models/{private}", headers=as_bob)).status_code == 404
        assert (await http.get(f"/v1/models/{private}/versions", headers=as_bob)).status_code == 404
        answers = [
            await http.get("/v1/models", headers=as_bob),
            await http.request("QUERY", "/v1/models", content=f"confidential-{suffix}",
                               headers={**as_bob, "Content-Type": "text/plain"}),
            await http.get("/v1/models", params={"query": f"confidential-{suffix}"}, headers=as_bob),
            await http.get("/v1/search", params={"query": f"confidential-{suffix}"}, headers=as_bob),
            await http.get("/v1/search", params={"query": alice}),
        ]
    for answer in answers:
        assert answer.status_code == 200, (answer.request.url, answer.text[:300])
        body = answer.json()
        listed = body.get("results") or [found["model"] for found in body.get("models", [])]
        assert f"confidential-{suffix}" not in [model["name"] for model in listed], answer.request.url
        assert private not in answer.text, answer.request.url  # (a search answer repeats its query)


async def test_push_errors_name_no_server_paths(platform: Any, tmp_path: Path) -> None:
    server_paths = {str(platform.stack.data_dir), str(ROOT), "cogwheel-upload-"}
    cases = {
        "outside": ('predict: "../outside.py:Predictor"\n', "class Predictor: ...\n", "outside the model directory"),
        "missing": ('predict: "missing.py:Predictor"\n', "class Predictor: ...\n", "does not exist"),
        "yaml": ("predict: [unclosed\n", "class Predictor: ...\n", "invalid YAML"),
        # Import-time code sees only the sandbox's own paths (/src), so its own message reveals nothing either.
        "import": ('predict: "predict.py:Predictor"\n',
                   "import os\nraise RuntimeError('at ' + __file__ + ' in ' + os.getcwd())\n", "at /src/predict.py"),
    }
    async with httpx.AsyncClient(base_url=platform.stack.base_url, timeout=60) as http:
        for name, (cog_yaml, predict, needle) in cases.items():
            model_dir = tmp_path / name
            model_dir.mkdir()
            (model_dir / "cog.yaml").write_text(cog_yaml)
            (model_dir / "predict.py").write_text(predict)
            response = await _push(http, platform.token, f"cogwheel/paths-{name}", build_package(model_dir).data)
            detail = _problem(response, 422)["detail"]
            assert needle in detail, (name, detail)
            assert not [path for path in server_paths if path in response.text], (name, detail)


async def test_failed_authentications_are_throttled(platform: Any) -> None:
    """Near the end of the module: it blocks this address for a few seconds."""
    async with httpx.AsyncClient(base_url=platform.stack.base_url, timeout=30) as http:
        assert (await http.get("/v1/account", headers=platform.headers)).status_code == 200
        for i in range(5):
            _problem(await http.get("/v1/account", headers={"Authorization": f"Bearer cwk_wrong{i}"}), 401)
        throttled = await http.get("/v1/account", headers={"Authorization": "Bearer cwk_wrong"})
        _problem(throttled, 429)
        assert 1 <= int(throttled.headers["Retry-After"]) <= 4
        # A token that authenticated moments ago is still served; after the window everyone is again.
        assert (await http.get("/v1/account", headers=platform.headers)).status_code == 200
        await asyncio.sleep(int(throttled.headers["Retry-After"]) + 0.5)
        _problem(await http.get("/v1/account", headers={"Authorization": "Bearer cwk_wrong"}), 401)


async def test_failed_logins_through_the_web_form_are_throttled_too(platform: Any) -> None:
    """After the API's throttle test: the same per-address count covers the web interface's login form."""
    await asyncio.sleep(4.5)  # the failure the previous test left leaves the window
    async with httpx.AsyncClient(base_url=platform.stack.base_url, timeout=30) as http:
        for i in range(5):
            failed = await http.post("/login", data={"token": f"cwk_guess{i}", "next": "/"})
            assert failed.status_code == 401, failed.text[:300]
        throttled = await http.post("/login", data={"token": "cwk_guess", "next": "/"})
        assert throttled.status_code == 429 and 1 <= int(throttled.headers["Retry-After"]) <= 4
        assert "Too many failed authentications" in throttled.text
        # One count per address: the API is refused too, while a token seen moments ago still works.
        _problem(await http.get("/v1/account", headers={"Authorization": "Bearer cwk_wrong"}), 429)
        assert (await http.get("/v1/account", headers=platform.headers)).status_code == 200
        await asyncio.sleep(int(throttled.headers["Retry-After"]) + 0.5)
        logged_in = await http.post("/login", data={"token": platform.token, "next": "/dashboard"})
        assert logged_in.status_code == 303 and logged_in.headers["location"] == "/dashboard"
