"""The runner's execution pieces against real worker processes, NATS JetStream and loopback HTTP servers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from nats.js.errors import BucketNotFoundError, KeyNotFoundError

from libs.blobs import OUTPUT_REF_PREFIX, OUTPUTS_BUCKET, get_blob
from libs.bus.nats import Bus, connect
from libs.bus.subjects import RUNNERS_BUCKET
from libs.events import Envelope
from libs.modelpkg import push_model_dir
from libs.netguard import parse_networks
from services.runner.adapters.protocol import FILE_KEY
from services.runner.adapters.supervisor import WorkerSupervisor
from services.runner.bootstrap import bootstrap
from services.runner.inputs import FileInputLimits, FileInputResolver, InputError
from services.runner.node import NodeHeartbeat
from services.runner.outputs import OutputUploader
from services.runner.settings import RunnerSettings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "predictors"


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await connect(nats_url, name="runner-execution-test")
    await bus.ensure_streams()
    yield bus
    await bus.close()


@pytest.fixture(scope="module")
def slow_server() -> Iterator[str]:
    """`/slow` trickles for seconds; `/endless` streams without a Content-Length."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            slow = self.path.split("?")[0] == "/slow"
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(60 if slow else 10_000):
                    self.wfile.write(b"x" * (10 if slow else 4096))
                    self.wfile.flush()
                    if slow:
                        time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_downloads_are_bounded_in_time_and_size(bus: Bus, slow_server: str, tmp_path: Path) -> None:
    resolver = FileInputResolver(bus.js, FileInputLimits(max_bytes=64 * 1024, timeout=0.5,
                                                         allowed_networks=parse_networks("127.0.0.0/8")))
    too_slow = r"^image: download of http://127\.0\.0\.1:\d+/slow did not finish within 0\.5"
    with pytest.raises(InputError, match=too_slow):
        await resolver.resolve({"image": f"{slow_server}/slow?token=x"}, ["image"], account="a", workdir=tmp_path)
    with pytest.raises(InputError, match=r"^image: download of .*/endless is larger than the limit of 64 KiB"):
        await resolver.resolve({"image": f"{slow_server}/endless"}, ["image"], account="a", workdir=tmp_path)
    with pytest.raises(InputError, match="data URI is larger than the limit"):
        await resolver.resolve({"image": "data:text/plain," + "y" * 70_000}, ["image"], account="a", workdir=tmp_path)
    resolved = await resolver.resolve({"image": "data:text/plain,hi%20there", "n": 1}, ["image"], account="a",
                                      workdir=tmp_path)
    assert resolved["n"] == 1 and Path(resolved["image"]).read_bytes() == b"hi there"
    assert Path(resolved["image"]).name == "1-file.txt"


async def test_async_predictor_runs_concurrency_max_predictions_at_once(
    bus: Bus, nats_url: str, tmp_path: Path
) -> None:
    hardware = f"test{uuid.uuid4().hex[:8]}"
    settings = RunnerSettings(nats_url=nats_url, data_dir=str(tmp_path), instance_id=f"runner-{hardware}",
                              hardware=hardware, heartbeat_interval=0.2)
    deps = await bootstrap(settings, bus=bus)
    pushed = await push_model_dir(bus.js, FIXTURES / "concurrent")
    ids = [f"c{i}-{uuid.uuid4().hex}" for i in range(3)]
    completed: dict[str, dict[str, Any]] = {}
    nodes: list[dict[str, Any]] = []

    async def on_event(msg: Any) -> None:
        envelope = Envelope.from_json(msg.data)
        if envelope.type == "runner.prediction_completed" and envelope.data["prediction_id"] in ids:
            completed[envelope.data["prediction_id"]] = envelope.data

    subscription = await bus.nc.subscribe("runner.events.prediction.completed", cb=on_event)
    stop = asyncio.Event()
    task = asyncio.create_task(deps.worker.run(stop))
    try:
        for pid in ids:
            job = {"prediction_id": pid, "version_id": pushed.version_id, "input": {"seconds": 1.5},
                   "account": "a", "created_at": "2026-01-01T00:00:00+00:00", "traceparent": None}
            await bus.publish(f"runner.jobs.{hardware}", json.dumps(job).encode(), msg_id=pid)
        kv = None
        deadline = time.monotonic() + 60
        while len(completed) < 3:
            assert time.monotonic() < deadline, "timed out"
            try:
                kv = kv or await bus.js.key_value(RUNNERS_BUCKET)
                entry = await kv.get(f"runner-{hardware}")
            except (BucketNotFoundError, KeyNotFoundError):  # the node's first heartbeat is not written yet
                entry = None
            if entry is not None:
                nodes.append(json.loads(entry.value))
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await subscription.unsubscribe()
    assert {data["status"] for data in completed.values()} == {"succeeded"}
    assert max(data["output"] for data in completed.values()) == 3
    assert max(node["busy"] for node in nodes) == 3
    assert any(w["slots"] == 3 for node in nodes for w in node["workers"])
    assert nodes[-1]["hardware"] == hardware and "gpus" in nodes[-1]


async def test_heartbeat_entry_disappears_when_the_node_stops(bus: Bus) -> None:
    runner_id = f"node-{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()
    heartbeat = NodeHeartbeat(bus.js, runner_id, "cpu", lambda: {"slots": 1, "busy": 0, "workers": []}, interval=0.1)
    task = asyncio.create_task(heartbeat.run(stop))
    kv = None
    for _ in range(100):
        try:
            kv = kv or await bus.js.key_value(RUNNERS_BUCKET)
            entry = await kv.get(runner_id)
            break
        except Exception:  # noqa: BLE001 - not written yet
            await asyncio.sleep(0.05)
    else:
        raise AssertionError("no heartbeat")
    assert json.loads(entry.value)["runner_id"] == runner_id
    stop.set()
    await task
    with pytest.raises(Exception):  # noqa: B017 - deleted: the client raises KeyDeletedError or KeyNotFoundError
        await kv.get(runner_id)


@pytest.mark.gpu
async def test_torch_model_runs_on_the_gpu_and_reports_its_memory() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    supervisor = WorkerSupervisor(FIXTURES / "torch_gpu", "predict.py:Predictor")
    try:
        result = await supervisor.predict("g1", {"scale": 3})
        assert result.status == "succeeded", result.error
        assert result.output == f"cuda:{3 * 1024 * 1024}"
        assert supervisor.stats is not None and supervisor.stats.gpu_memory_allocated >= 4 * 1024 * 1024
        assert supervisor.stats.gpu_device
    finally:
        await supervisor.stop()


async def test_an_unsandboxed_model_returns_files_read_from_host_paths(bus: Bus, tmp_path: Path) -> None:
    returned = tmp_path / "result.txt"
    returned.write_bytes(b"written by predict()")
    uploader = OutputUploader(bus.js, f"p-{uuid.uuid4().hex}")
    assert uploader.files is None  # no sandbox view: the returned path is a path of this host
    ref = await uploader.replace_files({"result": {FILE_KEY: str(returned)}})
    key = ref["result"].removeprefix(OUTPUT_REF_PREFIX)
    assert (await get_blob(bus.js, OUTPUTS_BUCKET, key)).data == b"written by predict()"
