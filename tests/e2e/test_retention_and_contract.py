"""Data retention with a short window, and the contract items of Replicate's spec, on the six services serving
HTTPS with their local CA, as `cogwheel up` does."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.js.errors
import psycopg
import pytest
import replicate

from libs.blobs import FILES_BUCKET, OUTPUTS_BUCKET, SPILL_BUCKET, BlobNotFound, get_blob
from libs.bus.subjects import PREDICTION_STREAMS, RUNNER_EVENTS, prediction_stream
from libs.pb.cogwheel.registry.v1 import registry_pb2, registry_pb2_grpc
from libs.pb.cogwheel.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from libs.rpc import create_channel
from libs.testing.polling import wait_until

PREDICTORS = Path(__file__).parents[1] / "fixtures" / "predictors"
RETENTION_SECONDS = 15
TERMINAL = ("succeeded", "failed", "canceled")


@pytest.fixture(scope="module")
def platform_tls() -> bool:
    return True


@pytest.fixture(scope="module")
def platform_replicas() -> dict[str, int]:
    return {}


@pytest.fixture
def trusting_shell(platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trust store `cogwheel env` exports, for the official Python client (it takes no other setting)."""
    for name, value in platform.stack.tls.client_env().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def platform_env() -> dict[str, str]:
    return {"COGWHEEL_PREDICTION_RETENTION_SECONDS": str(RETENTION_SECONDS),
            "COGWHEEL_RETENTION_SWEEP_INTERVAL": "0.5"}


@pytest.fixture(scope="module")
async def models(platform) -> dict[str, str]:
    await platform.push("cogwheel", "kitchen-sink", PREDICTORS / "kitchen_sink")
    await platform.push("cogwheel", "tokens", PREDICTORS / "tokens")
    await platform.push("cogwheel", "big-output", PREDICTORS / "big_output")
    return {"files": "cogwheel/kitchen-sink", "tokens": "cogwheel/tokens", "big": "cogwheel/big-output"}


async def _run(client: httpx.AsyncClient, model: str, payload: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/models/{model}/predictions", json={"input": payload, **extra},
                                 headers={"Prefer": "wait"})
    assert response.status_code == 201, response.text
    prediction = response.json()
    prediction_id = prediction["id"]

    async def ended() -> dict[str, Any] | None:
        current = (await client.get(f"/v1/predictions/{prediction_id}")).json()
        return current if current["status"] in TERMINAL else None

    return await wait_until(ended, timeout=120, interval=0.2)


async def _upload(client: httpx.AsyncClient, content: bytes, name: str = "doc.txt") -> dict[str, Any]:
    response = await client.post("/v1/files", files={"content": (name, content, "text/plain")})
    assert response.status_code == 201, response.text
    return response.json()


async def _web_prediction(platform, version: str) -> str:
    """Created as the web page would (`source: web`), through the scheduler's gRPC API."""
    channel = create_channel(platform.stack.scheduler_addr, default_timeout=30)
    try:
        stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        created = await stub.CreatePrediction(scheduler_pb2.CreatePredictionRequest(
            version_id=version, input_json=json.dumps({"text": "web"}), account="cogwheel", source="web",
        ))
        return str(created.id)
    finally:
        await channel.close()


async def _stream_messages(nats_url: str, prediction_id: str) -> bool:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().get_last_msg(PREDICTION_STREAMS.name, prediction_stream(prediction_id))
        return True
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await nc.close()


async def _blob_exists(nats_url: str, bucket: str, key: str) -> bool:
    nc = await nats.connect(nats_url)
    try:
        await get_blob(nc.jetstream(), bucket, key)
        return True
    except BlobNotFound:
        return False
    finally:
        await nc.close()


async def _removal_scheduled(database_url: str, prediction_id: str) -> bool:
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        cursor = await conn.execute("SELECT 1 FROM scheduler.data_removals WHERE prediction_id = %s",
                                    (prediction_id,))
        return await cursor.fetchone() is not None


async def test_api_prediction_data_and_files_are_removed_web_predictions_kept(platform, models) -> None:
    async with platform.client() as client:
        upload = await _upload(client, b"the document")
        api = await _run(client, models["files"], {"text": "kept-a-while", "document": upload["urls"]["get"]})
        assert api["status"] == "succeeded", api
        report_url = api["output"]["report"]
        assert (await client.get(report_url)).content == b"kept-a-while:1"
        report_key = report_url.split("/v1/outputs/", 1)[1]
        assert await _blob_exists(platform.nats_url, OUTPUTS_BUCKET, report_key)
        assert await _blob_exists(platform.nats_url, FILES_BUCKET, upload["id"])
        assert await _removal_scheduled(platform.database_url, api["id"])
        streamed = await _run(client, models["tokens"], {"n": 3})
        assert streamed["output"] == ["t0 ", "t1 ", "t2 "]
        assert await _stream_messages(platform.nats_url, streamed["id"])
        web_id = await _web_prediction(platform, platform.hello_version)

        async def removed(prediction_id: str) -> dict[str, Any] | None:
            current = (await client.get(f"/v1/predictions/{prediction_id}")).json()
            return current if current["data_removed"] else None

        gone = await wait_until(lambda: removed(api["id"]), timeout=120, interval=0.5)
        assert (gone["input"], gone["output"], gone["logs"]) == ({}, None, "")
        assert (gone["status"], gone["completed_at"]) == ("succeeded", api["completed_at"])
        assert (await client.get(report_url)).status_code == 404
        assert (await client.get(f"/v1/files/{upload['id']}")).status_code == 404
        assert (await client.get(upload["urls"]["download"])).status_code == 404
        # The bytes themselves are gone from the object stores, not only hidden by the API.
        assert not await _blob_exists(platform.nats_url, OUTPUTS_BUCKET, report_key)
        assert not await _blob_exists(platform.nats_url, FILES_BUCKET, upload["id"])
        channel = create_channel(platform.stack.scheduler_addr, default_timeout=30)
        try:  # the scheduler's own answer, which a gateway falls back on, says so too
            owned = await scheduler_pb2_grpc.SchedulerServiceStub(channel).GetPrediction(
                scheduler_pb2.GetPredictionRequest(id=api["id"]))
            assert (owned.data_removed, owned.input_json, owned.output_json) == (True, "{}", "null")
        finally:
            await channel.close()
        history = (await client.get(f"/v1/predictions/{api['id']}/events")).json()["results"]
        assert history[-1]["type"] == "prediction.data_removed"
        assert "kept-a-while" not in json.dumps(history)
        await wait_until(lambda: removed(streamed["id"]), timeout=60, interval=0.5)
        assert not await _stream_messages(platform.nats_url, streamed["id"])

        web = (await client.get(f"/v1/predictions/{web_id}")).json()
        assert web["source"] == "web"
        assert web["status"] == "succeeded", web
        assert not await _removal_scheduled(platform.database_url, web_id)
        # Long enough after the web prediction ended for a removal to have happened, had it been due.
        await asyncio.sleep(RETENTION_SECONDS / 2)
        web = (await client.get(f"/v1/predictions/{web_id}")).json()
        assert (web["data_removed"], web["output"], web["input"]) == (False, "hello web", {"text": "web"})


async def _spilled_of(nats_url: str, prediction_id: str) -> list[str]:
    """Names in `cogwheel-spilled` of what the prediction's events and reports stored by reference."""
    nc = await nats.connect(nats_url)
    try:
        store = await nc.jetstream().object_store(SPILL_BUCKET)
        try:
            entries = await store.list(ignore_deletes=True)
        except nats.js.errors.NotFoundError:
            return []
        return [entry.name for entry in entries if entry.name.startswith(f"{prediction_id}/") and not entry.deleted]
    finally:
        await nc.close()


async def _reports_holding(nats_url: str, needle: bytes, after: int) -> list[int]:
    """Sequences of RUNNER_EVENTS messages past `after` that hold `needle`."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        last = (await js.stream_info(RUNNER_EVENTS.name)).state.last_seq
        found = []
        for seq in range(after + 1, last + 1):
            try:
                message = await js.get_msg(RUNNER_EVENTS.name, seq)
            except nats.js.errors.NotFoundError:
                continue
            if needle in (message.data or b""):
                found.append(seq)
        return found
    finally:
        await nc.close()


async def _last_report(nats_url: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        return int((await nc.jetstream().stream_info(RUNNER_EVENTS.name)).state.last_seq)
    finally:
        await nc.close()


async def test_runner_reports_and_values_stored_by_reference_do_not_outlive_the_data(platform, models) -> None:
    marker = f"report-marker-{uuid.uuid4().hex[:12]}"
    before = await _last_report(platform.nats_url)
    async with platform.client() as client:
        ran = await _run(client, "cogwheel/hello-world", {"text": marker})
        assert ran["output"] == f"hello {marker}"
        size = 700 * 1024
        big = await _run(client, models["big"], {"size": size, "items": 1})
        assert big["status"] == "succeeded" and [len(item) for item in big["output"]] == [size, size]
        # The runner's reports went through RUNNER_EVENTS; the large ones and the events they led to went by
        # reference.
        assert await _last_report(platform.nats_url) > before
        assert await _spilled_of(platform.nats_url, big["id"])

        # Once recorded, reports are dropped from the stream: no copy of the prediction's output stays there.
        async def reports_dropped() -> bool:
            return await _reports_holding(platform.nats_url, marker.encode(), before) == []

        await wait_until(reports_dropped, timeout=30, interval=0.5)

        async def removed(prediction_id: str) -> dict[str, Any] | None:
            current = (await client.get(f"/v1/predictions/{prediction_id}")).json()
            return current if current["data_removed"] else None

        gone = await wait_until(lambda: removed(big["id"]), timeout=120, interval=0.5)
        assert (gone["output"], gone["status"]) == (None, "succeeded")
        assert await _spilled_of(platform.nats_url, big["id"]) == []
        # Its history still reads (the references it held are gone with the values).
        history = (await client.get(f"/v1/predictions/{big['id']}/events")).json()["results"]
        assert history[-1]["type"] == "prediction.data_removed"


async def test_predictions_list_filters_by_time_and_source(platform, models) -> None:
    async with platform.client() as client:
        first = await _run(client, "cogwheel/hello-world", {"text": "first"})
        await asyncio.sleep(0.05)
        middle = datetime.now(UTC)
        await asyncio.sleep(0.05)
        second = await _run(client, "cogwheel/hello-world", {"text": "second"})
        web_id = await _web_prediction(platform, platform.hello_version)

        async def listed(**params: str) -> list[str]:
            response = await client.get("/v1/predictions", params=params)
            assert response.status_code == 200, response.text
            return [p["id"] for p in response.json()["results"]]

        after = await listed(created_after=middle.isoformat())
        assert second["id"] in after and first["id"] not in after
        before = await listed(created_before=middle.isoformat().replace("+00:00", "Z"))
        assert first["id"] in before and second["id"] not in before
        window = await listed(created_after=(middle - timedelta(hours=1)).isoformat(),
                              created_before=middle.isoformat())
        assert first["id"] in window and second["id"] not in window

        async def web_listed() -> list[str] | None:
            ids = await listed(source="web")
            return ids if web_id in ids else None

        web_only = await wait_until(web_listed, timeout=30, interval=0.2)
        assert first["id"] not in web_only and second["id"] not in web_only
        bad = await client.get("/v1/predictions", params={"created_after": "yesterday"})
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")


@pytest.fixture
def webhook_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()


async def test_webhook_completed_gets_only_the_completed_event(platform, models, webhook_receiver) -> None:
    url, received = webhook_receiver
    async with platform.client() as client:
        done = await _run(client, "cogwheel/hello-world", {"text": "hook"}, webhook_completed=url)
        assert done["webhook"] == url and done["webhook_events_filter"] == ["completed"]
        await wait_until(lambda: asyncio.sleep(0, result=received or None), timeout=60, interval=0.2)
        await asyncio.sleep(1.0)  # nothing else follows
        assert [(body["id"], body["status"]) for body in received] == [(done["id"], "succeeded")]
        both = await client.post("/v1/models/cogwheel/hello-world/predictions",
                                 json={"input": {"text": "x"}, "webhook": url, "webhook_completed": url + "/other"})
        assert both.status_code == 422
        assert both.json()["invalid_fields"][0]["field"] == "webhook_completed"


async def test_signed_download_links_work_without_a_token(platform) -> None:
    async with platform.client() as client:
        upload = await _upload(client, b"shared bytes", name="shared.txt")
    link = upload["urls"]["download"]
    async with httpx.AsyncClient(verify=platform.stack.verify) as anonymous:
        response = await anonymous.get(link)
        assert response.status_code == 200, response.text
        assert response.content == b"shared bytes"
        tampered = link.replace("owner=cogwheel", "owner=someone")
        assert (await anonymous.get(tampered)).status_code == 404
        expired = httpx.URL(link).copy_set_param("expiry", "1000")
        assert (await anonymous.get(expired)).status_code == 404
        assert (await anonymous.get(f"{platform.stack.base_url}/v1/files/{upload['id']}/download")).status_code == 401


async def test_model_search_takes_a_json_string_body_and_its_next_link_is_a_search(platform) -> None:
    async with platform.client() as client:
        plain = await client.request("QUERY", "/v1/models", content="hello",
                                     headers={"Content-Type": "text/plain"})
        encoded = await client.request("QUERY", "/v1/models", content=json.dumps("hello"),
                                       headers={"Content-Type": "application/json"})
        assert plain.status_code == encoded.status_code == 200
        names = [m["name"] for m in encoded.json()["results"]]
        assert "hello-world" in names
        assert names == [m["name"] for m in plain.json()["results"]]
        # What a `next` link of a search looks like: the query travels as a parameter.
        following = await client.get("/v1/models", params={"query": "hello"})
        assert [m["name"] for m in following.json()["results"]] == names


def _official_client(platform) -> replicate.Client:
    return replicate.Client(api_token=platform.token, base_url=platform.stack.base_url)


async def test_webhook_completed_from_the_official_python_client(platform, webhook_receiver, trusting_shell) -> None:
    url, received = webhook_receiver

    def create() -> tuple[str, object, object]:
        created = _official_client(platform).predictions.create(
            model="cogwheel/hello-world", input={"text": "py-hook"}, webhook_completed=url)
        created.wait()
        return created.id, created.status, created.output

    prediction_id, status, output = await asyncio.to_thread(create)
    assert (status, output) == ("succeeded", "hello py-hook")
    await wait_until(lambda: asyncio.sleep(0, result=received or None), timeout=60, interval=0.2)
    await asyncio.sleep(1.0)  # nothing else follows
    assert [(body["id"], body["status"]) for body in received] == [(prediction_id, "succeeded")]


async def test_model_search_next_link_continues_the_search_in_the_official_client(platform, trusting_shell) -> None:
    channel = create_channel(platform.stack.registry_addr, default_timeout=30)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        for n in range(105):
            await registry.CreateModel(registry_pb2.CreateModelRequest(
                owner="cogwheel", name=f"findable-{n:03d}", visibility="public"))
    finally:
        await channel.close()

    def search() -> tuple[list[str], str | None, list[str], str | None]:
        client = _official_client(platform)
        first = client.models.search("findable-")  # QUERY /v1/models
        assert first.next is not None
        following = client.models.list(cursor=first.next)  # how the client follows `next`: GET of that URL
        return [m.name for m in first.results], first.next, [m.name for m in following.results], following.next

    first, next_url, rest, last = await asyncio.to_thread(search)
    assert next_url.startswith(f"{platform.stack.base_url}/v1/models?")
    assert len(first) == 100 and last is None
    assert sorted(first + rest) == [f"findable-{n:03d}" for n in range(105)]


async def test_readme_is_plain_markdown_or_404(platform) -> None:
    # A model of its own: the modules' stacks share one database, and `cogwheel/hello-world` is everyone's.
    name = f"readme-{uuid.uuid4().hex[:8]}"
    async with platform.client() as client:
        created = await client.post("/v1/models", json={"owner": "cogwheel", "name": name, "visibility": "public",
                                                        "hardware": "cpu"})
        assert created.status_code == 201, created.text
        missing = await client.get(f"/v1/models/cogwheel/{name}/readme")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        updated = await client.patch(f"/v1/models/cogwheel/{name}", json={"readme": "# Hello\n\nSays *hi*.\n"})
        assert updated.status_code == 200, updated.text
        readme = await client.get(f"/v1/models/cogwheel/{name}/readme")
    assert readme.status_code == 200
    assert readme.headers["content-type"].startswith("text/plain")
    assert readme.text == "# Hello\n\nSays *hi*.\n"
