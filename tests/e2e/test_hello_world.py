"""A hello-world prediction through all six service processes, and back."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import psycopg
import pytest

from libs.bus.subjects import RUNNER_EVENTS, SCHEDULER_RUNNER_EVENTS_DURABLE
from libs.db.engine import libpq_url
from libs.infra import create_database, drop_database
from libs.testing.infra import provide_nats
from libs.testing.polling import wait_until

PREDICTORS = Path(__file__).parents[1] / "fixtures" / "predictors"

REPLICATE_KEYS = {
    "id", "model", "version", "input", "output", "logs", "error", "status",
    "created_at", "started_at", "completed_at", "urls", "metrics",
}


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory, infra_mode: str) -> Iterator[str]:
    """A NATS of the module's own: the rebuild test replays the whole event stream into the read model."""
    with provide_nats(tmp_path_factory.mktemp("nats"), infra_mode) as url:
        yield url


@pytest.fixture(scope="module")
def database_url(database_url: str) -> Iterator[str]:
    """A database of the module's own, so the read model holds exactly what this module's stack did."""
    url = create_database(database_url)
    try:
        yield url
    finally:
        drop_database(url)


async def test_sync_prediction_returns_output(platform) -> None:
    async with platform.client() as client:
        response = await client.post(
            "/v1/predictions",
            json={"version": platform.hello_version, "input": {"text": "world"}},
            headers={"Prefer": "wait"},
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert REPLICATE_KEYS <= body.keys()
    assert body["status"] == "succeeded"
    assert body["output"] == "hello world"
    assert body["model"] == "cogwheel/hello-world"
    assert body["version"] == platform.hello_version
    assert body["urls"]["get"] == f"{platform.stack.base_url}/v1/predictions/{body['id']}"
    assert body["metrics"]["predict_time"] >= 0
    assert response.headers["preference-applied"] == "wait"


async def test_async_prediction_is_readable_and_completes(platform) -> None:
    async with platform.client() as client:
        created = await client.post(
            "/v1/models/cogwheel/hello-world/predictions", json={"input": {"text": "async"}}
        )
        assert created.status_code == 201, created.text
        prediction_id = created.json()["id"]
        assert created.json()["status"] in ("starting", "processing", "succeeded")

        async def finished() -> dict | None:
            body = (await client.get(f"/v1/predictions/{prediction_id}")).json()
            return body if body["status"] == "succeeded" else None

        body = await wait_until(finished, timeout=15)
    assert body["output"] == "hello async"
    assert body["started_at"] and body["completed_at"]


async def test_event_history_is_ordered_and_shares_one_trace(platform) -> None:
    trace_id = os.urandom(16).hex()
    traceparent = f"00-{trace_id}-{os.urandom(8).hex()}-01"
    async with platform.client() as client:
        response = await client.post(
            "/v1/predictions",
            json={"version": platform.hello_version, "input": {"text": "trace"}},
            headers={"Prefer": "wait=10", "traceparent": traceparent},
        )
        prediction_id = response.json()["id"]
        events = (await client.get(f"/v1/predictions/{prediction_id}/events")).json()["results"]
    # (A cold boot, when this runs first, adds `prediction.waiting` lines between creation and start.)
    versions = [e["stream_version"] for e in events]
    events = [e for e in events if e["type"] != "prediction.waiting"]
    assert [e["type"] for e in events] == ["prediction.created", "prediction.started", "prediction.succeeded"]
    assert versions == list(range(1, len(versions) + 1))
    # HTTP → gRPC → scheduler's events; the runner's reports (over NATS) caused the later ones.
    for event in events:
        assert event["metadata"]["traceparent"].split("-")[1] == trace_id, event
    assert events[1]["metadata"]["causation_id"] and events[2]["metadata"]["causation_id"]


async def test_billing_and_webhook_dispatcher_see_the_prediction(platform) -> None:
    received: asyncio.Queue[dict] = asyncio.Queue()

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
        import json

        await received.put(json.loads(await reader.readexactly(length)))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with platform.client() as client:
            response = await client.post(
                "/v1/predictions",
                json={
                    "version": platform.hello_version,
                    "input": {"text": "hook"},
                    "webhook": f"http://127.0.0.1:{port}/hook",
                    "webhook_events_filter": ["completed"],
                },
                headers={"Prefer": "wait"},
            )
        prediction_id = response.json()["id"]
        delivered = await asyncio.wait_for(received.get(), timeout=15)
        assert delivered["id"] == prediction_id
        assert delivered["status"] == "succeeded"
        assert delivered["output"] == "hello hook"
    finally:
        server.close()

    async def usage() -> tuple | None:
        async with await psycopg.AsyncConnection.connect(libpq_url(platform.database_url)) as conn:
            cursor = await conn.execute(
                "SELECT account, predict_time FROM billing.usage WHERE prediction_id = %s", (prediction_id,)
            )
            return await cursor.fetchone()

    account, predict_time = await wait_until(usage, timeout=15)
    assert account == "cogwheel"
    assert predict_time >= 0


async def test_webhooks_are_signed_and_their_attempts_listed(platform) -> None:
    import replicate
    from replicate.webhook import InvalidSignatureError, Webhooks, WebhookSigningSecret
    from standardwebhooks import Webhook

    received: asyncio.Queue[tuple[dict[str, str], bytes]] = asyncio.Queue()

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in head.split("\r\n")[1:] if line)
        }
        await received.put((headers, await reader.readexactly(int(headers["content-length"]))))
        writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(receiver, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with platform.client() as client:
            response = await client.post(
                "/v1/predictions",
                json={
                    "version": platform.hello_version,
                    "input": {"text": "signed"},
                    "webhook": f"http://127.0.0.1:{port}/signed?customId=7",
                    "webhook_events_filter": ["start", "completed"],
                },
                headers={"Prefer": "wait"},
            )
            prediction_id = response.json()["id"]
            deliveries = [await asyncio.wait_for(received.get(), timeout=15) for _ in range(2)]

            replicate_client = replicate.Client(api_token=platform.token, base_url=platform.stack.base_url)
            secret = await asyncio.to_thread(replicate_client.webhooks.default.secret)
            assert secret.key.startswith("whsec_")
            for headers, raw in deliveries:
                assert Webhooks.validate(headers=headers, body=raw.decode(), secret=secret, tolerance=60) is None
                assert Webhook(secret.key).verify(raw, headers)["id"] == prediction_id
            assert [json.loads(raw)["status"] for _, raw in deliveries] == ["starting", "succeeded"]
            with pytest.raises(InvalidSignatureError):
                Webhooks.validate(headers=deliveries[0][0], body=deliveries[0][1].decode(),
                                  secret=WebhookSigningSecret(key="whsec_" + "A" * 44))

            async def attempts() -> list | None:
                listed = await client.get(f"/v1/predictions/{prediction_id}/webhooks")
                assert listed.status_code == 200, listed.text
                results = listed.json()["results"]
                return results if len(results) == 2 else None

            results = await wait_until(attempts, timeout=15)
            assert [(a["event"], a["status_code"], a["outcome"]) for a in results] == [
                ("start", 204, "delivered"),
                ("completed", 204, "delivered"),
            ]
            assert [a["webhook_id"] for a in results] == [h["webhook-id"] for h, _ in deliveries]

            summary = (await client.get("/v1/webhooks/summary", params={"hours": 1})).json()
            assert summary["hours"] == 1 and summary["delivered"] >= 2
            assert (await client.get("/v1/webhooks/summary", params={"hours": 0})).status_code == 422
            assert (await client.get(f"/v1/predictions/{'0' * 26}/webhooks")).status_code == 404

            for bad in ("ftp://example.com/hook", "not a url", "http://", "https://[::1/hook", "http://host:99999/"):
                refused = await client.post(
                    "/v1/predictions",
                    json={"version": platform.hello_version, "input": {"text": "x"}, "webhook": bad},
                )
                assert refused.status_code == 422, (bad, refused.text)
                assert refused.headers["content-type"].startswith("application/problem+json")
                assert refused.json()["invalid_fields"][0]["field"] == "webhook"
    finally:
        server.close()


async def test_unknown_token_is_refused(platform) -> None:
    async with httpx.AsyncClient(base_url=platform.stack.base_url) as client:
        response = await client.get("/v1/predictions", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["title"] == "Unauthenticated"


@pytest.mark.timeout(180)
async def test_two_runners_share_the_work_and_survive_losing_one(platform) -> None:
    sleeper = await platform.push("cogwheel", "sleeper", PREDICTORS / "sleeper")
    async with platform.client() as client:

        async def run(seconds: float) -> dict:
            response = await client.post(
                "/v1/predictions",
                json={"version": sleeper, "input": {"seconds": seconds}},
                headers={"Prefer": "wait=60"},
            )
            return response.json()

        # Warm both runners' workers so the timing below measures sharing, not model loading.
        await asyncio.gather(*(run(0.1) for _ in range(4)))
        began = time.monotonic()
        results = await asyncio.gather(*(run(1.0) for _ in range(4)))
        elapsed = time.monotonic() - began
        assert [r["status"] for r in results] == ["succeeded"] * 4
        # One runner alone would need at least 4 s.
        assert elapsed < 3.9, elapsed

        await platform.stack.kill("runner-1", restart=False)
        after = await asyncio.gather(*(run(0.1) for _ in range(3)))
        assert [r["status"] for r in after] == ["succeeded"] * 3
        await platform.stack.start_process("runner-1")
        await platform.stack.wait_healthy(["runner-1"])


@pytest.mark.timeout(180)
async def test_losing_a_scheduler_loses_no_prediction(platform) -> None:
    await platform.stack.kill("scheduler-1", restart=False)
    try:
        async with platform.client() as client:
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/v1/predictions",
                        json={"version": platform.hello_version, "input": {"text": str(n)}},
                        headers={"Prefer": "wait=30"},
                    )
                    for n in range(5)
                )
            )
        assert [r.json()["output"] for r in responses] == [f"hello {n}" for n in range(5)]
    finally:
        await platform.stack.start_process("scheduler-1")
        await platform.stack.wait_healthy(["scheduler-1"])



def _official_client_calls(base_url: str, token: str, version: str) -> dict:
    import replicate

    client = replicate.Client(api_token=token, base_url=base_url)
    by_model = client.run("cogwheel/hello-world", input={"text": "model"})
    by_version = client.run(f"cogwheel/hello-world:{version}", input={"text": "version"})
    created = client.predictions.create(version=version, input={"text": "poll"})
    created.wait()
    fetched = client.predictions.get(created.id)
    return {"by_model": by_model, "by_version": by_version, "polled": fetched.output, "status": fetched.status}


async def test_official_python_client_runs_the_model(platform) -> None:
    result = await asyncio.to_thread(
        _official_client_calls, platform.stack.base_url, platform.token, platform.hello_version
    )
    assert result == {
        "by_model": "hello model",
        "by_version": "hello version",
        "polled": "hello poll",
        "status": "succeeded",
    }


async def test_gateway_read_model_rebuilds_to_the_same_state(platform) -> None:
    async def snapshot() -> list[tuple]:
        async with await psycopg.AsyncConnection.connect(libpq_url(platform.database_url)) as conn:
            cursor = await conn.execute("SELECT id, stream_version, status, view FROM gateway.predictions ORDER BY id")
            return await cursor.fetchall()

    async with platform.client() as client:
        await client.post(
            "/v1/predictions",
            json={"version": platform.hello_version, "input": {"text": "rebuild"}},
            headers={"Prefer": "wait"},
        )

    async def read_model_caught_up() -> bool:
        # The answer may come before the events (from the runner's stored completion): wait until the read
        # model has applied every event the scheduler recorded, and the scheduler every runner report.
        nc = await nats.connect(platform.nats_url)
        try:
            reports = await nc.jetstream().consumer_info(RUNNER_EVENTS.name, SCHEDULER_RUNNER_EVENTS_DURABLE)
        finally:
            await nc.close()
        async with await psycopg.AsyncConnection.connect(libpq_url(platform.database_url)) as conn:
            behind = await (await conn.execute(
                "SELECT count(*) FROM gateway.predictions p WHERE p.stream_version <"
                " (SELECT max(stream_version) FROM scheduler.events e WHERE e.stream_id = 'prediction-' || p.id)"
            )).fetchone()
        return reports.num_pending == 0 and reports.num_ack_pending == 0 and behind == (0,)

    await wait_until(read_model_caught_up, timeout=30)
    before = await snapshot()
    # Every prediction this module made is finished by now.
    assert before and all(row[2] in ("succeeded", "failed", "canceled") for row in before)
    async with await psycopg.AsyncConnection.connect(libpq_url(platform.database_url), autocommit=True) as conn:
        await conn.execute("UPDATE gateway.predictions SET status = 'starting', view = '{}'::jsonb")

    env = {
        **os.environ,
        "COGWHEEL_DATABASE_URL": platform.database_url,
        "COGWHEEL_NATS_URL": platform.nats_url,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.gateway", "rebuild-projections", env=env
    )
    assert await process.wait() == 0
    after = await snapshot()
    differences = {
        row[0]: (row[1:3], again[1:3], {key: (row[3].get(key), again[3].get(key))
                                        for key in row[3].keys() | again[3].keys()
                                        if row[3].get(key) != again[3].get(key)})
        for row, again in zip(before, after, strict=True) if row != again
    }
    assert after == before, differences


async def test_bad_requests_get_replicate_style_errors(platform) -> None:
    async with platform.client() as client:
        unknown_field = await client.post(
            "/v1/predictions", json={"version": platform.hello_version, "input": {}, "model": "x"}
        )
        malformed = await client.post(
            "/v1/predictions", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        unknown_version = await client.post("/v1/predictions", json={"version": "a" * 64, "input": {}})
        missing = await client.get("/v1/predictions/doesnotexist")
    assert unknown_field.status_code == 422
    assert "Additional property model is not allowed" in unknown_field.json()["detail"]
    assert malformed.status_code == 400
    assert unknown_version.status_code == 422
    assert unknown_version.json()["title"] == "Invalid version or not permitted"
    assert missing.status_code == 404
    for response in (unknown_field, malformed, unknown_version, missing):
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["status"] == response.status_code
