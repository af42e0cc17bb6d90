"""Running unmodified Cog models through all six services: inputs, files, streaming, cancel, timeouts, crashes."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest
import replicate

from libs.blobs import FILES_BUCKET, put_blob
from libs.bus.subjects import RUNNERS_BUCKET
from libs.modelpkg import push_model_dir
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import RpcAlreadyExists, create_channel
from libs.testing.polling import wait_until

PREDICTORS = Path(__file__).parents[1] / "fixtures" / "predictors"
OWNER = "cogwheel"
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def platform_env() -> dict[str, str]:
    # The test file server listens on loopback, which downloads may not reach unless allowed.
    return {"COGWHEEL_DOWNLOAD_ALLOWED_NETWORKS": "127.0.0.0/8"}


async def push(platform: Any, name: str, fixture: str | None = None, *, hardware: str = "cpu") -> str:
    """Register `cogwheel/<name>` on `hardware` and push a fixture predictor as its version."""
    channel = create_channel(platform.stack.registry_addr, default_timeout=30)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        try:
            await registry.CreateModel(
                pb.CreateModelRequest(owner=OWNER, name=name, visibility="public", hardware=hardware)
            )
        except RpcAlreadyExists:
            pass
        nc = await nats.connect(platform.nats_url)
        try:
            pushed = await push_model_dir(nc.jetstream(), PREDICTORS / (fixture or name))
        finally:
            await nc.close()
        await registry.CreateVersion(
            pb.CreateVersionRequest(
                owner=OWNER, name=name, version_id=pushed.version_id,
                openapi_schema_json=json.dumps(pushed.openapi_schema), cog_version=pushed.cog_version,
                package_key=pushed.package_key, predictor_ref=pushed.predictor_ref,
            )
        )
        return pushed.version_id
    finally:
        await channel.close()


@pytest.fixture(scope="module")
async def versions(platform: Any) -> dict[str, str]:
    names = ["kitchen_sink", "file_list", "file_iter", "tokens", "sleeper", "stubborn", "short_timeout", "killed",
             "loud", "path_output"]
    pushed = await asyncio.gather(*(push(platform, name.replace("_", "-"), name) for name in names))
    return dict(zip(names, pushed, strict=True))


@pytest.fixture(scope="module")
def file_server() -> Iterator[str]:
    """A loopback HTTP server: `/note.txt` (text), `/big.bin` (claims more than the download limit)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/note.txt":
                body = b"from the web"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/big.bin":
                self.send_response(200)
                self.send_header("Content-Length", str(200 * 1024 * 1024))
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
async def client(platform: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with platform.client() as http:
        yield http


async def create(client: httpx.AsyncClient, version: str, input: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await client.post("/v1/predictions", json={"version": version, "input": input}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


async def finished(client: httpx.AsyncClient, prediction_id: str, timeout: float = 30) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        body = (await client.get(f"/v1/predictions/{prediction_id}")).json()
        return body if body["status"] in TERMINAL else None

    return await wait_until(probe, timeout=timeout, interval=0.1)


async def run(client: httpx.AsyncClient, version: str, input: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    return await finished(client, (await create(client, version, input))["id"], timeout)


async def events_of(client: httpx.AsyncClient, prediction_id: str) -> list[dict[str, Any]]:
    return (await client.get(f"/v1/predictions/{prediction_id}/events")).json()["results"]


async def read_sse(url: str, headers: dict[str, str] | None = None, limit: int | None = None) -> list[dict[str, str]]:
    """Events up to `done` (or the first `limit` events), without credentials, as the JavaScript client reads."""
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=30) as http:
        async with http.stream("GET", url, headers={"Accept": "text/event-stream", **(headers or {})}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            async for line in response.aiter_lines():
                if line == "":
                    if "event" in current:
                        events.append(current)
                        if current["event"] == "done" or (limit is not None and len(events) >= limit):
                            return events
                    current = {}
                elif not line.startswith(":"):
                    field, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    current[field] = current[field] + "\n" + value if field == "data" and field in current else value
    return events


# --- inputs ----------------------------------------------------------------------------------------------


async def test_every_input_type_reaches_the_model(client, versions, file_server) -> None:
    note = "data:text/plain;base64," + base64.b64encode(b"inline file").decode()
    body = await run(client, versions["kitchen_sink"], {
        "text": "hello", "number": 7, "ratio": 2, "flag": True, "choice": "b", "size": 512, "tags": ["p", "q"],
        "document": f"{file_server}/note.txt", "attachments": [note, f"{file_server}/note.txt"],
        "token": "s3cret-value", "seed": 42,
    })
    assert body["status"] == "succeeded", body
    output = body["output"]
    assert {k: output[k] for k in ("text", "number", "ratio", "flag", "choice", "size", "tags", "seed")} == {
        "text": "hello", "number": 7, "ratio": 2.0, "flag": True, "choice": "b", "size": 512, "tags": ["p", "q"],
        "seed": 42,
    }
    assert output["document_type"] == "cog.types.Path"
    assert output["document"] == "from the web"
    assert output["attachments"] == ["inline file", "from the web"]
    assert output["secret_length"] == len("s3cret-value")
    # A Path inside an output object is uploaded like any other output file.
    report = await client.get(output["report"])
    assert report.status_code == 200 and report.text == "hello:7"
    assert report.headers["content-type"].startswith("text/plain")
    assert "stream" not in body["urls"]


async def test_secret_inputs_are_redacted_in_events_and_api(client, versions, file_server) -> None:
    body = await run(client, versions["kitchen_sink"], {
        "text": "s", "document": f"{file_server}/note.txt", "token": "do-not-store-me",
    })
    assert body["status"] == "succeeded" and body["output"]["secret_length"] == len("do-not-store-me")
    assert body["input"]["token"] == "**********"
    listed = (await client.get("/v1/predictions")).json()["results"]
    assert next(p for p in listed if p["id"] == body["id"])["input"]["token"] == "**********"
    history = await events_of(client, body["id"])
    assert history[0]["data"]["input"]["token"] == "**********"
    assert "do-not-store-me" not in json.dumps(history)


async def test_invalid_inputs_fail_with_clear_errors(client, versions, file_server) -> None:
    # What the version's schema can judge is refused at the gateway, naming the field.
    for input, field in (({"document": f"{file_server}/note.txt"}, "input"),
                         ({"text": "a", "number": 101, "document": f"{file_server}/note.txt"}, "input.number"),
                         ({"text": "a", "choice": "z", "document": f"{file_server}/note.txt"}, "input.choice")):
        response = await client.post("/v1/predictions", json={"version": versions["kitchen_sink"], "input": input})
        assert response.status_code == 422, response.text
        assert [f["field"] for f in response.json()["invalid_fields"]] == [field]
    # What only fetching can judge fails the prediction with a clear error.
    local_path = await run(client, versions["kitchen_sink"], {"text": "a", "document": "/etc/passwd"})
    assert local_path["status"] == "failed" and "is not a URL" in local_path["error"]
    too_big = await run(client, versions["kitchen_sink"], {"text": "a", "document": f"{file_server}/big.bin"})
    assert too_big["status"] == "failed"
    assert "document: download of" in too_big["error"] and "larger than the limit" in too_big["error"]
    not_found = await run(client, versions["kitchen_sink"], {"text": "a", "document": f"{file_server}/gone"})
    assert not_found["status"] == "failed" and "HTTP 404" in not_found["error"]


async def test_uploaded_files_resolve_only_for_their_account(client, platform, versions) -> None:
    account = (await client.get("/v1/account")).json()["username"]
    mine, theirs = uuid.uuid4().hex, uuid.uuid4().hex
    nc = await nats.connect(platform.nats_url)
    try:
        js = nc.jetstream()
        await put_blob(js, FILES_BUCKET, mine, b"uploaded bytes", content_type="text/plain",
                       metadata={"account": account, "filename": "mine.txt"})
        await put_blob(js, FILES_BUCKET, theirs, b"private", content_type="text/plain",
                       metadata={"account": "someone-else"})
    finally:
        await nc.close()
    base = platform.stack.base_url
    ok = await run(client, versions["kitchen_sink"], {"text": "f", "document": f"{base}/v1/files/{mine}"})
    assert ok["status"] == "succeeded", ok
    assert ok["output"]["document"] == "uploaded bytes"
    refused = await run(client, versions["kitchen_sink"], {"text": "f", "document": f"{base}/v1/files/{theirs}"})
    assert refused["status"] == "failed" and refused["error"] == f"document: file {theirs} not found"


# --- outputs ---------------------------------------------------------------------------------------------


async def test_path_outputs_are_served_with_their_content_type(client, platform, versions) -> None:
    single = await run(client, versions["path_output"], {})
    assert single["status"] == "succeeded"
    assert single["output"] == f"{platform.stack.base_url}/v1/outputs/{single['id']}/1-out.txt"
    assert (await client.get(single["output"])).headers["content-type"].startswith("text/plain")

    listed = await run(client, versions["file_list"], {"name": "result"})
    text_url, json_url = listed["output"]
    assert text_url.endswith(f"/v1/outputs/{listed['id']}/1-result.txt")
    assert json_url.endswith(f"/v1/outputs/{listed['id']}/2-result.json")
    async with httpx.AsyncClient() as anonymous:  # no token needed
        text, data = [await anonymous.get(url) for url in (text_url, json_url)]
    assert text.text == "plain text" and text.headers["content-type"].startswith("text/plain")
    assert data.json() == {"name": "result"} and data.headers["content-type"] == "application/json"

    frames = await run(client, versions["file_iter"], {"frames": 3})
    assert frames["status"] == "succeeded" and len(frames["output"]) == 3
    png = await client.get(frames["output"][2])
    assert png.headers["content-type"] == "image/png" and png.content.startswith(b"\x89PNG")
    assert (await client.get("/v1/outputs/nope/1-missing.txt")).status_code == 404


# --- streaming -------------------------------------------------------------------------------------------


async def test_replicate_stream_reads_tokens(platform, versions) -> None:
    client = replicate.Client(api_token=platform.token, base_url=platform.stack.base_url)

    def stream() -> list[tuple[str, str]]:
        return [(event.event.value, event.data) for event in client.stream("cogwheel/tokens", input={"n": 5})]

    events = await asyncio.to_thread(stream)
    assert [data for name, data in events if name == "output"] == [f"t{i} " for i in range(5)]
    assert ("logs", "generating 5 tokens") in events
    assert events[-1] == ("done", "{}")


async def test_stream_resumes_after_last_event_id_and_replays_after_the_end(client, platform, versions) -> None:
    created = await create(client, versions["tokens"], {"n": 40, "delay": 0.02})
    url = created["urls"]["stream"]
    assert url.startswith(f"{platform.stack.base_url}/v1/predictions/{created['id']}/stream?token=")
    first = await read_sse(url, limit=4)
    assert all(event.get("id") for event in first)
    rest = await read_sse(url, headers={"Last-Event-ID": first[-1]["id"]})
    assert int(rest[0]["id"]) > int(first[-1]["id"])
    outputs = [e["data"] for e in first + rest if e["event"] == "output"]
    assert outputs == [f"t{i} " for i in range(40)]
    assert rest[-1] == {"event": "done", "id": rest[-1]["id"], "data": "{}"}
    await finished(client, created["id"])
    replay = await read_sse(url)
    assert [e["data"] for e in replay if e["event"] == "output"] == outputs
    body = (await client.get(f"/v1/predictions/{created['id']}")).json()
    assert body["output"] == [f"t{i} " for i in range(40)]


async def test_progress_events_are_coalesced(client, versions) -> None:
    body = await run(client, versions["tokens"], {"n": 1000, "delay": 0.002}, timeout=60)
    assert body["status"] == "succeeded" and len(body["output"]) == 1000
    progressed = [e for e in await events_of(client, body["id"]) if e["type"] == "prediction.progressed"]
    assert 1 <= len(progressed) <= 40, len(progressed)
    items = [item for event in progressed for item in event["data"]["output_items"]]
    assert items == body["output"][: len(items)]


async def test_stream_of_a_prediction_that_failed_to_start_ends(client, versions) -> None:
    created = await create(client, versions["tokens"], {"fail": True})
    events = await read_sse(created["urls"]["stream"])
    # The traceback may arrive as logs first; the stream then ends with the error.
    assert [e["event"] for e in events if e["event"] != "logs"] == ["error", "done"]
    error, done = (e for e in events if e["event"] != "logs")
    assert "asked to fail before the first token" in json.loads(error["data"])["detail"]
    assert json.loads(done["data"]) == {"reason": "error"}


# --- logs ------------------------------------------------------------------------------------------------


async def test_logs_include_subprocess_output_and_are_truncated(client, versions) -> None:
    small = await run(client, versions["loud"], {"lines": 2})
    assert small["status"] == "succeeded"
    for text in ("line 000000", "to stderr", "written to fd 1", "from a subprocess"):
        assert text in small["logs"]
    big = await run(client, versions["loud"], {"lines": 20000}, timeout=60)
    logs = big["logs"]
    assert big["status"] == "succeeded"
    assert logs.startswith("line 000000") and "line 019999" in logs and "from a subprocess" in logs
    assert "truncated" in logs and "line 010000" not in logs
    assert len(logs.encode()) < 600 * 1024


# --- cancel, timeout, crash ------------------------------------------------------------------------------


async def _processing(client: httpx.AsyncClient, prediction_id: str, marker: str) -> None:
    async def probe() -> bool:
        body = (await client.get(f"/v1/predictions/{prediction_id}")).json()
        return body["status"] == "processing" and marker in (body["logs"] or "")

    await wait_until(probe, timeout=30, interval=0.1)


async def test_cancel_reaches_a_running_model(client, versions) -> None:
    created = await create(client, versions["sleeper"], {"seconds": 60})
    await _processing(client, created["id"], "going to sleep")
    canceled = (await client.post(f"/v1/predictions/{created['id']}/cancel")).json()
    assert canceled["status"] == "canceled"
    # The worker stopped (not killed): the same version answers right away.
    after = await run(client, versions["sleeper"], {"seconds": 0})
    assert after["status"] == "succeeded" and after["output"] == "woke up"


async def test_worker_ignoring_cancel_is_killed_and_replaced(client, platform, versions) -> None:
    created = await create(client, versions["stubborn"], {"seconds": 120})
    await _processing(client, created["id"], "stubborn start")
    assert (await client.post(f"/v1/predictions/{created['id']}/cancel")).json()["status"] == "canceled"
    nc = await nats.connect(platform.nats_url)
    try:
        bucket = await nc.jetstream().key_value(RUNNERS_BUCKET)

        async def restarted() -> bool:
            try:
                keys = await bucket.keys()
            except nats.js.errors.NoKeysError:  # between two beats of a busy node
                return False
            for key in keys:
                try:
                    node = json.loads((await bucket.get(key)).value)
                except nats.js.errors.KeyNotFoundError:
                    continue
                assert {"runner_id", "hardware", "slots", "busy", "workers", "gpus"} <= node.keys()
                if any(w["version"] == versions["stubborn"] and w["restarts"] >= 1 for w in node["workers"]):
                    return True
            return False

        await wait_until(restarted, timeout=30, interval=0.25)
    finally:
        await nc.close()
    after = await run(client, versions["stubborn"], {"seconds": 0})
    assert after["status"] == "succeeded" and after["output"] == "finished"


async def test_prediction_times_out(client, versions) -> None:
    body = await run(client, versions["short_timeout"], {"seconds": 60})
    assert body["status"] == "failed"
    assert body["error"] == "Prediction timed out after 2 seconds"
    assert "working slowly" in body["logs"]


async def test_killed_worker_fails_its_prediction_and_is_restarted(client, versions) -> None:
    body = await run(client, versions["killed"], {"die": True})
    assert body["status"] == "failed"
    assert body["error"] == "worker exited unexpectedly (signal 9, possibly out of memory)"
    assert "using too much memory" in body["logs"]
    after = await run(client, versions["killed"], {})
    assert after["status"] == "succeeded" and after["output"] == "alive"


async def test_cancel_after_cancels_running_and_queued_predictions(client, platform, versions) -> None:
    nowhere = await push(platform, "never-runs", "unserved", hardware="nowhere")
    running = await create(client, versions["sleeper"], {"seconds": 60}, **{"Cancel-After": "5s"})
    queued = await create(client, nowhere, {"seconds": 1}, **{"Cancel-After": "5"})
    assert running["deadline"] and queued["deadline"]
    ended = await asyncio.gather(finished(client, running["id"]), finished(client, queued["id"]))
    assert [body["status"] for body in ended] == ["canceled", "canceled"]
    assert ended[0].get("started_at") is not None and ended[1].get("started_at") is None
    history = await events_of(client, queued["id"])
    assert history[-1]["type"] == "prediction.canceled" and history[-1]["data"]["reason"] == "deadline"
    bad = await client.post("/v1/predictions", json={"version": versions["sleeper"], "input": {}},
                            headers={"Cancel-After": "soon"})
    assert bad.status_code == 400
    short = await client.post("/v1/predictions", json={"version": versions["sleeper"], "input": {}},
                              headers={"Cancel-After": "1s"})
    assert short.status_code == 422
