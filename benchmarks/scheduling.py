"""Instances on hardware: cold-boot overhead, reloads with models in rotation, time for a burst to scale out.

- Cold boot overhead: for a cached package (second and later boots on a node), the time from the
  scheduler's decision (`instance.requested`) to the instance being ready, minus the model's own setup()
  (`setup_time`), and what the waiting prediction saw (`metrics.queue_time`).
- Rotation: three models in turn on a node with room for three; instance boots after the warm-up (target 0).
- Burst: ten 1-second predictions at once on a one-slot model with one instance ready; time from the burst's
  start to a prediction starting on the extra instance.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from benchmarks.stats import print_table
from cogwheel.seed import seed
from cogwheel.stack import Stack
from libs.db.engine import libpq_url
from libs.infra import EmbeddedNats, EmbeddedPostgres, free_port
from libs.modelpkg import push_model_dir
from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import RpcAlreadyExists, create_channel

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "predictors" / "sleeper"
IDLE_SECONDS = 3


async def _push(stack: Stack, nats_url: str, work: Path, name: str) -> str:
    import nats

    model_dir = work / "models" / name
    shutil.copytree(FIXTURE, model_dir)
    (model_dir / "seed.txt").write_text(name)
    channel = create_channel(stack.registry_addr, default_timeout=30)
    nc = await nats.connect(nats_url)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        try:
            await registry.CreateModel(pb.CreateModelRequest(owner="cogwheel", name=name, visibility="public",
                                                             hardware="cpu"))
        except RpcAlreadyExists:
            pass
        pushed = await push_model_dir(nc.jetstream(), model_dir)
        import json

        await registry.CreateVersion(pb.CreateVersionRequest(
            owner="cogwheel", name=name, version_id=pushed.version_id,
            openapi_schema_json=json.dumps(pushed.openapi_schema), cog_version=pushed.cog_version,
            package_key=pushed.package_key, predictor_ref=pushed.predictor_ref))
        return pushed.version_id
    finally:
        await nc.close()
        await channel.close()


async def _predict(client: httpx.AsyncClient, version: str, seconds: float) -> dict[str, Any]:
    response = await client.post("/v1/predictions", json={"version": version, "input": {"seconds": seconds}},
                                 headers={"Prefer": "wait=60"})
    body = response.json()
    while body["status"] not in ("succeeded", "failed", "canceled"):
        await asyncio.sleep(0.1)
        body = (await client.get(f"/v1/predictions/{body['id']}")).json()
    assert body["status"] == "succeeded", body
    return body


async def _instances(database_url: str) -> dict[str, dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        rows = await (await conn.execute(
            "SELECT stream_id, type, data FROM scheduler.events WHERE stream_id LIKE 'instance-%'"
            " ORDER BY position")).fetchall()
    folded: dict[str, dict[str, Any]] = {}
    for stream, kind, data in rows:
        entry = folded.setdefault(stream.removeprefix("instance-"), {})
        entry[kind.removeprefix("instance.")] = data
    return folded


def _table(title: str, rows: dict[str, list[float]]) -> None:
    print_table(title, rows, reference=next(iter(rows)))


def _at(data: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(data["at"])


async def run() -> None:
    work = Path(tempfile.mkdtemp(prefix="cogwheel-bench-sched-"))
    nats = EmbeddedNats(work / "nats")
    postgres = EmbeddedPostgres(work / "postgres")
    nats_url = await nats.astart()
    database_url = await asyncio.to_thread(postgres.start)
    stack = Stack(
        nats_url, database_url, work, gateway_port=free_port(), notify=lambda _line: None,
        replicas={"runner": 2},
        extra_env={"COGWHEEL_SCALE_TO_ZERO_SECONDS": str(IDLE_SECONDS), "COGWHEEL_SCALE_IN_SECONDS": "2",
                   "COGWHEEL_SCALE_OUT_AFTER_SECONDS": "1", "COGWHEEL_HEARTBEAT_INTERVAL": "1"},
        process_env={"runner-1": {"COGWHEEL_INSTANCE_SLOTS": "3"}, "runner-2": {"COGWHEEL_INSTANCE_SLOTS": "3"}},
    )
    try:
        await stack.start(timeout=120)
        seeded = await seed(stack.registry_addr, nats_url)
        headers = {"Authorization": f"Bearer {seeded.token}"}
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=70, headers=headers) as client:
            # 1. Cold boots of a cached package.
            cold = await _push(stack, nats_url, work, "cold")
            await _predict(client, cold, 0)  # first boot: the package is fetched and unpacked
            overheads, waits, boots = [], [], []
            for _ in range(5):
                await asyncio.sleep(IDLE_SECONDS + 2)  # scaled to zero
                before = set(await _instances(database_url))
                body = await _predict(client, cold, 0)
                waits.append(body["metrics"]["queue_time"] * 1000)
                new = [i for key, i in (await _instances(database_url)).items() if key not in before and "ready" in i]
                assert len(new) == 1, "expected exactly one cold boot"
                boot = (_at(new[0]["ready"]) - _at(new[0]["requested"])).total_seconds()
                boots.append(boot * 1000)
                overheads.append((boot - float(new[0]["ready"]["setup_time"])) * 1000)
            _table("cold boot of a cached package (5 boots; the model's setup() does nothing, so the whole boot is "
                   "overhead)", {
                "boot, requested → ready (overhead beyond setup())": boots,
                "  of which outside the worker start (− setup_time)": overheads,
                "prediction's queue_time (created → started)": waits,
            })

            # 2. Three models in rotation on nodes with room for three each.
            rotation = [await _push(stack, nats_url, work, name) for name in ("rot-a", "rot-b", "rot-c")]
            for version in rotation:
                await _predict(client, version, 0)
            warmed = await _instances(database_url)
            began = time.perf_counter()
            latencies = []
            for i in range(30):
                one = time.perf_counter()
                await _predict(client, rotation[i % 3], 0)
                latencies.append((time.perf_counter() - one) * 1000)
            after = await _instances(database_url)
            reloads = len([key for key in after if key not in warmed])
            _table(f"three models in rotation, 30 predictions after warm-up: {reloads} reload(s) "
                        f"in {time.perf_counter() - began:.1f} s", {"prediction latency (Prefer: wait)": latencies})

            # 3. A burst on a one-slot model with one instance ready.
            burst_version = await _push(stack, nats_url, work, "burst")
            await _predict(client, burst_version, 0)
            before = set(await _instances(database_url))
            start = time.perf_counter()
            started_wall = datetime.now().astimezone()
            ids = []
            for _ in range(10):
                response = await client.post("/v1/predictions", json={"version": burst_version,
                                                                      "input": {"seconds": 1}})
                ids.append(response.json()["id"])
            extra_ready = None
            while extra_ready is None and time.perf_counter() - start < 60:
                new = [i for key, i in (await _instances(database_url)).items() if key not in before and "ready" in i]
                if new:
                    extra_ready = new[0]
                await asyncio.sleep(0.1)
            assert extra_ready is not None, "no extra instance within 60 s"
            instance_id = extra_ready["ready"]["id"]
            async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
                first_start = None
                while first_start is None and time.perf_counter() - start < 60:
                    row = await (await conn.execute(
                        "SELECT min(data->>'started_at') FROM scheduler.events WHERE type = 'prediction.started'"
                        " AND data->>'instance_id' = %s", (instance_id,))).fetchone()
                    first_start = row[0]
                    await asyncio.sleep(0.1)
            for pid in ids:
                while (await client.get(f"/v1/predictions/{pid}")).json()["status"] not in ("succeeded",):
                    await asyncio.sleep(0.2)
            ready_after = (_at(extra_ready["ready"]) - started_wall).total_seconds() * 1000
            serving_after = (datetime.fromisoformat(first_start) - started_wall).total_seconds() * 1000
            _table("burst of ten 1 s predictions on a one-slot model (one instance warm)", {
                "burst start → extra instance ready": [ready_after],
                "burst start → first prediction started on it": [serving_after],
            })
    finally:
        await stack.stop()
        await asyncio.to_thread(postgres.stop)
        await nats.astop()
        shutil.rmtree(work, ignore_errors=True)
