"""Latency of a hello-world prediction with `Prefer: wait`, next to Cog's own HTTP server on the same predictor.

Cogwheel's path: HTTP → gateway → gRPC scheduler → PostgreSQL commit → outbox relay → JetStream → runner →
worker process → JetStream → scheduler → PostgreSQL → relay → gateway. Cog's path: HTTP → coglet → worker.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.stats import print_table
from cogwheel.seed import default_model_dir, seed
from cogwheel.stack import Stack
from libs.infra import EmbeddedNats, EmbeddedPostgres, free_port, wait_for_port
from libs.modelpkg import load_cog_config

WARMUP = 20


async def _timed_posts(client: httpx.AsyncClient, url: str, body: dict, headers: dict, n: int) -> list[float]:
    samples = []
    for _ in range(WARMUP + n):
        began = time.perf_counter()
        response = await client.post(url, json=body, headers=headers)
        while response.status_code == 409:
            # coglet answers 409 while its single slot is still being released; a client would retry, and
            # the retry counts in the latency it sees.
            await asyncio.sleep(0.001)
            response = await client.post(url, json=body, headers=headers)
        elapsed = (time.perf_counter() - began) * 1000
        response.raise_for_status()
        payload = response.json()
        assert payload.get("output") == "hello world", payload
        samples.append(elapsed)
    return samples[WARMUP:]


def _replicate_client_samples(base_url: str, token: str, version: str, n: int) -> list[float]:
    import replicate

    client = replicate.Client(api_token=token, base_url=base_url)
    samples = []
    for _ in range(WARMUP + n):
        began = time.perf_counter()
        output = client.run(f"cogwheel/hello-world:{version}", input={"text": "world"})
        samples.append((time.perf_counter() - began) * 1000)
        assert output == "hello world", output
    return samples[WARMUP:]


async def _cog_reference(n: int) -> list[float]:
    """Cog's server (coglet) on the same predictor, as `cog serve` would run it minus Docker."""
    port = free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        # `cog build` sets this from cog.yaml; coglet spawns `python` from PATH for its worker.
        "COG_PREDICT_TYPE_STUB": load_cog_config(default_model_dir()).predict,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    workdir = Path(tempfile.mkdtemp(prefix="cog-ref-"))
    shutil.copytree(default_model_dir(), workdir, dirs_exist_ok=True)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cog.server.http", cwd=workdir, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(wait_for_port, port, timeout=60)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for _ in range(600):
                health = await client.get("/health-check")
                if health.json().get("status") == "READY":
                    break
                await asyncio.sleep(0.1)
            return await _timed_posts(client, "/predictions", {"input": {"text": "world"}}, {}, n)
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
        shutil.rmtree(workdir, ignore_errors=True)


async def run(requests: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="cogwheel-bench-"))
    nats = EmbeddedNats(work / "nats")
    postgres = EmbeddedPostgres(work / "postgres")
    nats_url = await nats.astart()
    database_url = await asyncio.to_thread(postgres.start)
    stack = Stack(nats_url, database_url, work, gateway_port=free_port(), notify=lambda _line: None)
    try:
        await stack.start(timeout=120)
        seeded = await seed(stack.registry_addr, nats_url)
        headers = {"Authorization": f"Bearer {seeded.token}", "Prefer": "wait"}
        body = {"version": seeded.version_id, "input": {"text": "world"}}
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=70) as client:
            cogwheel_http = await _timed_posts(client, "/v1/predictions", body, headers, requests)
        cogwheel_client = await asyncio.to_thread(
            _replicate_client_samples, stack.base_url, seeded.token, seeded.version_id, requests
        )
        cog = await _cog_reference(requests)
        print_table(
            f"hello-world, one request at a time, {requests} requests after {WARMUP} warm-up (2-core machine)",
            {
                "cog server (coglet), POST /predictions": cog,
                "cogwheel, httpx, Prefer: wait": cogwheel_http,
                "cogwheel, replicate client run()": cogwheel_client,
            },
            reference="cog server (coglet), POST /predictions",
        )
    finally:
        await stack.stop()
        await asyncio.to_thread(postgres.stop)
        await nats.astop()
        shutil.rmtree(work, ignore_errors=True)
