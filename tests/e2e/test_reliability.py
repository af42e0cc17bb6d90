"""Faults against a whole platform of its own (embedded NATS and PostgreSQL under supervision, every service
replicated): retrying a create safely across a gateway kill, 503 and readiness during a NATS and a PostgreSQL
outage, a dead runner's started prediction failed naming it (never run twice) while a queued one runs, and the
short chaos run (a kill of each kind) that must lose nothing."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nats
import pytest

from cogwheel.chaos import KINDS, Platform, run_chaos
from libs.modelpkg import push_model_dir
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import RpcAlreadyExists, create_channel
from libs.testing.polling import wait_until

SLEEPER = Path(__file__).resolve().parents[1] / "fixtures" / "predictors" / "sleeper"
REPLICAS = {"gateway": 2, "scheduler": 2, "runner": 2, "registry": 2, "webhook_dispatcher": 2, "billing": 1}


@pytest.fixture(scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    running = Platform(tmp_path_factory.mktemp("reliability"), REPLICAS, notify=lambda line: None)
    # A NATS outage long enough to be seen from the API.
    running.servers.restart_backoff = 4.0
    async with running.running():
        yield running


def _headers(platform: Platform, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {platform.token}", **extra}


async def _create(
    http: httpx.AsyncClient, gateway: str, platform: Platform, body: dict, **headers: str
) -> httpx.Response:
    return await http.post(f"{gateway}/v1/models/cogwheel/hello-world/predictions", json=body,
                           headers=_headers(platform, **headers))


async def test_the_same_idempotency_key_returns_the_same_prediction_across_a_gateway_kill(platform: Platform) -> None:
    assert platform.stack is not None
    first, second = platform.gateways
    key = uuid.uuid4().hex
    body = {"input": {"text": key}}
    async with httpx.AsyncClient(timeout=60) as http:
        created = await _create(http, first, platform, body, **{"Idempotency-Key": key})
        assert created.status_code == 201, created.text

        await platform.stack.kill("gateway-1")  # SIGKILL; the supervisor brings it back
        again = await _create(http, second, platform, {"input": {"text": key}}, **{"Idempotency-Key": key})
        assert again.status_code == 200, again.text
        assert again.json()["id"] == created.json()["id"]

        other = await _create(http, second, platform, {"input": {"text": "another"}}, **{"Idempotency-Key": key})
        assert other.status_code == 422
        assert other.headers["content-type"].startswith("application/problem+json")
        assert "Idempotency-Key" in other.json()["detail"]

        without = [await _create(http, second, platform, body) for _ in range(2)]
        assert [r.status_code for r in without] == [201, 201]
        assert without[0].json()["id"] != without[1].json()["id"]
        await platform.stack.wait_healthy(["gateway-1"], timeout=60)


def test_the_official_python_client_sends_an_idempotency_key_through_its_headers(platform: Platform) -> None:
    import replicate

    key = uuid.uuid4().hex
    client = replicate.Client(api_token=platform.token, base_url=platform.gateways[0],
                              headers={"Idempotency-Key": key})
    first = client.models.predictions.create("cogwheel/hello-world", input={"text": key})
    again = client.models.predictions.create("cogwheel/hello-world", input={"text": key})
    assert first.id == again.id
    with pytest.raises(replicate.exceptions.ReplicateError) as refused:
        client.models.predictions.create("cogwheel/hello-world", input={"text": "another body"})
    assert refused.value.status == 422


async def test_creates_answer_503_while_nats_is_down_and_readiness_follows(platform: Platform) -> None:
    assert platform.stack is not None
    gateway = platform.gateways[1]
    scheduler_ready = platform.stack.processes["scheduler-1"].health_url
    assert scheduler_ready.endswith("/readyz")
    async with httpx.AsyncClient(timeout=30) as http:
        assert (await http.get(scheduler_ready)).status_code == 200
        await platform.kill("nats")

        async def scheduler_not_ready() -> bool:
            return (await http.get(scheduler_ready)).status_code == 503

        await wait_until(scheduler_not_ready, timeout=10)
        refused = await _create(http, gateway, platform, {"input": {"text": "during the outage"}})
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["status"] == 503

        async def scheduler_ready_again() -> bool:
            return (await http.get(scheduler_ready)).status_code == 200

        await wait_until(scheduler_ready_again, timeout=90, interval=0.3)
        await platform.stack.wait_healthy(timeout=90)
        after = await _create(http, gateway, platform, {"input": {"text": "after"}}, Prefer="wait=30")
        assert after.status_code == 201 and after.json()["status"] == "succeeded", after.text


async def test_creates_answer_503_while_postgres_is_down_and_readiness_follows(platform: Platform) -> None:
    assert platform.stack is not None
    gateway = platform.gateways[0]
    scheduler_ready = platform.stack.processes["scheduler-2"].health_url
    async with httpx.AsyncClient(timeout=30) as http:
        # The token is authenticated (and cached) before the outage, as for a client already at work.
        before = await _create(http, gateway, platform, {"input": {"text": "before"}})
        assert before.status_code == 201, before.text
        await platform.kill("postgres")

        async def scheduler_not_ready() -> bool:
            down = await http.get(scheduler_ready)
            return down.status_code == 503 and down.json()["checks"]["postgres"] != "ok"

        await wait_until(scheduler_not_ready, timeout=10, interval=0.1)
        refused = await _create(http, gateway, platform, {"input": {"text": "during the outage"}})
        assert refused.status_code == 503, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) > 0
        assert refused.json()["status"] == 503

        async def scheduler_ready_again() -> bool:
            return (await http.get(scheduler_ready)).status_code == 200

        await wait_until(scheduler_ready_again, timeout=90, interval=0.3)
        await platform.stack.wait_healthy(timeout=90)
        after = await _create(http, gateway, platform, {"input": {"text": "after"}}, Prefer="wait=30")
        assert after.status_code == 201 and after.json()["status"] == "succeeded", after.text
        # What was accepted before the outage was not lost: it ends too (the read model catches up once the
        # events held up by the outage are applied).
        first_url = f"{gateway}/v1/predictions/{before.json()['id']}"

        async def first_ended() -> dict | None:
            view = (await http.get(first_url, headers=_headers(platform))).json()
            return view if view["status"] in ("succeeded", "failed", "canceled") else None

        first = await wait_until(first_ended, timeout=60, interval=0.3)
        assert first["status"] == "succeeded", first


async def _push_sleeper(platform: Platform) -> None:
    assert platform.stack is not None
    channel = create_channel(platform.stack.registry_addr, default_timeout=30)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        try:
            await registry.CreateModel(
                pb.CreateModelRequest(owner="cogwheel", name="sleeper", visibility="public", hardware="cpu")
            )
        except RpcAlreadyExists:
            pass
        nc = await nats.connect(platform.servers.nats_url)
        try:
            pushed = await push_model_dir(nc.jetstream(), SLEEPER)
        finally:
            await nc.close()
        with_schema = pb.CreateVersionRequest(
            owner="cogwheel", name="sleeper", version_id=pushed.version_id,
            openapi_schema_json=json.dumps(pushed.openapi_schema), cog_version=pushed.cog_version,
            package_key=pushed.package_key, predictor_ref=pushed.predictor_ref,
        )
        try:
            await registry.CreateVersion(with_schema)
        except RpcAlreadyExists:
            pass
    finally:
        await channel.close()


async def test_a_killed_runners_started_prediction_fails_naming_it_and_a_queued_one_runs(platform: Platform) -> None:
    assert platform.stack is not None
    await _push_sleeper(platform)
    gateway = platform.gateways[0]
    async with httpx.AsyncClient(timeout=30) as http:
        async def create(seconds: float) -> str:
            created = await http.post(f"{gateway}/v1/models/cogwheel/sleeper/predictions",
                                      json={"input": {"seconds": seconds}}, headers=_headers(platform))
            assert created.status_code == 201, created.text
            return f"{gateway}/v1/predictions/{created.json()['id']}"

        url = await create(4)

        async def processing() -> bool:
            return (await http.get(url, headers=_headers(platform))).json()["status"] == "processing"

        await wait_until(processing, timeout=60, interval=0.2)
        killed_at = time.monotonic()
        # Whichever runner holds the job dies with it (both do; they come back under supervision).
        await asyncio.gather(*(platform.stack.kill(name) for name in platform.stack.names("runner")))
        # Created while no runner is up: it has not started anywhere, so it runs once they are back.
        queued = await create(0.5)

        async def finished(of: str) -> dict | None:
            view = (await http.get(of, headers=_headers(platform))).json()
            return view if view["status"] in ("succeeded", "failed", "canceled") else None

        view = await wait_until(lambda: finished(url), timeout=60, interval=0.3)
        ended_in = time.monotonic() - killed_at
        after = await wait_until(lambda: finished(queued), timeout=90, interval=0.3)
    print(f"runner killed mid-prediction: failed naming the node {ended_in:.1f} s later")
    # predict() had started: it is not run again, and the error names the node that was lost.
    assert view["status"] == "failed", view
    assert "running this prediction was lost" in view["error"] and "runner-" in view["error"], view["error"]
    assert after["status"] == "succeeded" and after["output"] == "woke up", after
    assert ended_in < 35, ended_in


async def test_a_kill_of_each_kind_loses_nothing_and_delivers_each_webhook_once(platform: Platform) -> None:
    report = await run_chaos(KINDS, per_kill=20, concurrency=4, platform=platform, settle_timeout=120,
                             notify=lambda line: None)
    print(report.table())
    details = "\n".join(line for phase in report.phases for line in phase.details)
    assert report.violations() == [], f"{report.table()}\n{details}"
    for phase in report.phases:
        assert len(phase.created) == phase.requested == 20, report.table()
        assert phase.terminal == 20, report.table()
        # One delivery each: sent once, or sent again with the same webhook-id after an attempt that the
        # history records (a receiver answering too late under load), which receivers drop by that id.
        assert phase.webhooks["1"] + phase.webhooks["retried"] == 20 and phase.webhooks["dup"] == 0, report.table()
        assert phase.billed["1"] == 20, report.table()
