"""WorkerSupervisor against real worker processes; the job consumer and object store against NATS JetStream."""

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from libs.bus.nats import Bus, connect
from libs.events import Envelope
from libs.modelpkg import VERSIONS_BUCKET, ModelPackageError, fetch_package, push_model_dir
from services.runner.adapters import protocol as p
from services.runner.adapters.supervisor import WorkerSetupError, WorkerSupervisor
from services.runner.bootstrap import bootstrap
from services.runner.settings import RunnerSettings
from services.runner.worker import CANCEL_SUBJECT

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "predictors"
REF = "predict.py:Predictor"


@pytest.fixture
async def supervisor() -> AsyncIterator[Callable[..., WorkerSupervisor]]:
    started: list[WorkerSupervisor] = []

    def make(model_dir: Path, **kwargs: object) -> WorkerSupervisor:
        sup = WorkerSupervisor(model_dir, REF, **kwargs)  # type: ignore[arg-type]
        started.append(sup)
        return sup

    yield make
    for sup in started:
        await sup.stop()


async def test_hello_world(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sup = supervisor(ROOT / "examples" / "hello-world")
    await sup.start()
    result = await sup.predict("p1", {"text": "world"})
    assert result.status == "succeeded"
    assert result.output == "hello world"
    assert result.error is None
    assert result.started_at <= result.completed_at
    assert 0 < result.predict_time < 1


async def test_missing_required_input_fails(supervisor: Callable[..., WorkerSupervisor]) -> None:
    result = await supervisor(ROOT / "examples" / "hello-world").predict("p1", {})
    assert result.status == "failed"
    assert result.error == "text: Field required"


async def test_logs_defaults_and_callbacks(supervisor: Callable[..., WorkerSupervisor]) -> None:
    seen: list[tuple[str, str]] = []
    outputs: list[object] = []

    def on_event(message: p.Message) -> None:
        if isinstance(message, p.Log):
            seen.append((message.id, message.text))
        elif isinstance(message, p.Output):
            outputs.append(message.value)

    sup = supervisor(FIXTURES / "chatty", on_event=on_event)
    await sup.start()
    assert sup.setup_logs == "loading weights\n"
    result = await sup.predict("p1", {"times": "2"})
    assert result.status == "succeeded"
    assert result.output == "hi therehi there"
    assert "greeting there\n" in result.logs
    assert "to stderr\n" in result.logs
    assert "via logging" in result.logs
    assert "".join(text for _, text in seen) == result.logs
    assert {pid for pid, _ in seen} == {"p1"}
    assert outputs == ["hi therehi there"]


async def test_exception_becomes_failed(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sup = supervisor(FIXTURES / "failing")
    result = await sup.predict("p1", {"text": "bob"})
    assert result.status == "failed"
    assert result.error == "cannot greet bob"
    assert "Traceback" in result.logs and "ValueError" in result.logs
    assert (await sup.predict("p2", {"text": "amy"})).error == "cannot greet amy"


async def test_crash_fails_prediction_and_restarts(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sup = supervisor(FIXTURES / "crash")
    assert (await sup.predict("p1", {})).output == "alive"
    crashed = await sup.predict("p2", {"crash": True})
    assert crashed.status == "failed"
    assert crashed.error == "worker exited unexpectedly (exit code 3)"
    after = await sup.predict("p3", {})
    assert after.status == "succeeded" and after.output == "alive"


async def test_cancel_sleeping_prediction(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sup = supervisor(FIXTURES / "sleeper")
    await sup.start()
    task = asyncio.create_task(sup.predict("p1", {"seconds": 30}))
    await asyncio.sleep(0.3)
    began = time.monotonic()
    assert await sup.cancel("p1")
    result = await asyncio.wait_for(task, 10)
    assert result.status == "canceled"
    assert time.monotonic() - began < 2, "cancel must interrupt the sleep, not wait for it or the kill"
    assert "going to sleep" in result.logs
    assert (await sup.predict("p2", {"seconds": 0})).output == "woke up"
    assert not await sup.cancel("p2")


async def test_iterator_output(supervisor: Callable[..., WorkerSupervisor]) -> None:
    items: list[object] = []
    sup = supervisor(FIXTURES / "stream",
                     on_event=lambda message: items.append(message.value) if isinstance(message, p.Output) else None)
    result = await sup.predict("p1", {"n": 3})
    assert result.output == ["token0", "token1", "token2"] == items


async def test_async_generator_and_cancel(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sup = supervisor(FIXTURES / "async_stream")
    assert (await sup.predict("p1", {"n": 2})).output == ["a0", "a1"]
    task = asyncio.create_task(sup.predict("p2", {"n": 100, "delay": 0.1}))
    await asyncio.sleep(0.5)
    await sup.cancel("p2")
    result = await asyncio.wait_for(task, 5)
    assert result.status == "canceled"
    assert 0 < len(result.output or []) < 100


async def test_path_output_and_weights(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sup = supervisor(FIXTURES / "path_output", weights="https://example.com/w.bin")
    result = await sup.predict("p1", {})
    assert result.status == "succeeded"
    path = result.output[p.FILE_KEY]
    # A sandboxed model names files as it sees them; the supervisor reads them from the sandbox's side.
    data = sup.output_files.read_bytes(path) if sup.output_files is not None else Path(path).read_bytes()
    assert data == b"https://example.com/w.bin"


async def test_setup_failure_reports_logs(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sup = supervisor(FIXTURES / "setup_fails")
    with pytest.raises(WorkerSetupError, match="weights missing") as info:
        await sup.start()
    assert "about to fail" in info.value.logs


async def test_import_failure_is_setup_failure(supervisor: Callable[..., WorkerSupervisor]) -> None:
    with pytest.raises(WorkerSetupError, match="definitely_not_a_module"):
        await supervisor(FIXTURES / "import_error").start()


# --- with NATS JetStream: object store transfer and the job consumer ---------------------------------


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await connect(nats_url, name="runner-test")
    await bus.ensure_streams()
    yield bus
    await bus.close()


async def test_push_then_fetch(bus: Bus, tmp_path: Path) -> None:
    pushed = await push_model_dir(bus.js, ROOT / "examples" / "hello-world")
    again = await push_model_dir(bus.js, ROOT / "examples" / "hello-world")
    assert again.version_id == pushed.version_id == pushed.package_key
    assert pushed.predictor_ref == REF
    assert pushed.cog_version == "0.23.1"
    assert "Input" in pushed.openapi_schema["components"]["schemas"]
    bucket = await bus.js.object_store(VERSIONS_BUCKET)
    names = [info.name for info in await bucket.list()]
    assert names.count(pushed.version_id) == 1

    cache = tmp_path / "cache"
    path = await fetch_package(bus.js, pushed.version_id, cache)
    assert path == cache / pushed.version_id
    assert (path / "predict.py").read_text() == (ROOT / "examples" / "hello-world" / "predict.py").read_text()
    assert await fetch_package(bus.js, pushed.version_id, cache) == path
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [pushed.version_id]


async def test_fetch_unknown_version(bus: Bus, tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="not in bucket"):
        await fetch_package(bus.js, "0" * 64, tmp_path)


async def test_push_refuses_broken_predictors(bus: Bus) -> None:
    with pytest.raises(ModelPackageError, match="definitely_not_a_module"):
        await push_model_dir(bus.js, FIXTURES / "import_error")
    with pytest.raises(ModelPackageError, match="no predictor reference"):
        await push_model_dir(bus.js, FIXTURES / "no_ref")
    with pytest.raises(ModelPackageError, match="no cog.yaml"):
        await push_model_dir(bus.js, FIXTURES)


async def _collect_events(bus: Bus, prediction_ids: set[str]) -> tuple[dict[str, list[Envelope]], Any]:
    seen: dict[str, list[Envelope]] = {pid: [] for pid in prediction_ids}

    async def on_event(msg: Any) -> None:
        envelope = Envelope.from_json(msg.data)
        if envelope.type != "runner.prediction_progress" and envelope.data.get("prediction_id") in seen:
            seen[envelope.data["prediction_id"]].append(envelope)

    return seen, await bus.nc.subscribe("runner.events.prediction.>", cb=on_event)


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_worker_runs_jobs_and_reports(bus: Bus, nats_url: str, tmp_path: Path) -> None:
    # A hardware class of its own: runners of other tests sharing this NATS server must not take these jobs.
    hardware = f"test{uuid.uuid4().hex[:8]}"
    settings = RunnerSettings(
        nats_url=nats_url, data_dir=str(tmp_path), instance_id="runner-test-1", hardware=hardware
    )
    deps = await bootstrap(settings, bus=bus)
    hello = await push_model_dir(bus.js, ROOT / "examples" / "hello-world")
    sleeper = await push_model_dir(bus.js, FIXTURES / "sleeper")
    ids = {f"ok-{uuid.uuid4()}", f"cancel-{uuid.uuid4()}", f"missing-{uuid.uuid4()}"}
    ok_id, cancel_id, missing_id = sorted(ids, key=lambda i: ("ok", "cancel", "missing").index(i.split("-")[0]))
    seen, subscription = await _collect_events(bus, ids)
    stop = asyncio.Event()
    task = asyncio.create_task(deps.worker.run(stop))
    try:
        for pid, version, job_input in (
            (ok_id, hello.version_id, {"text": "world"}),
            (cancel_id, sleeper.version_id, {"seconds": 60}),
            (missing_id, "f" * 64, {}),
        ):
            job = {"prediction_id": pid, "version_id": version, "input": job_input,
                   "created_at": "2024-01-01T00:00:00+00:00", "traceparent": None}
            await bus.publish(f"runner.jobs.{hardware}", json.dumps(job).encode(), msg_id=pid)
        await _until(lambda: len(seen[ok_id]) == 2)
        await _until(lambda: len(seen[cancel_id]) == 1)
        await asyncio.sleep(0.3)
        await bus.nc.publish(CANCEL_SUBJECT, json.dumps({"prediction_id": cancel_id}).encode())
        await _until(lambda: len(seen[cancel_id]) == 2 and len(seen[missing_id]) == 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await subscription.unsubscribe()

    # The first run starts a worker process (well past the start report's delay): its start is reported.
    started, completed = seen[ok_id]
    assert started.type == "runner.prediction_started" and started.stream_id == f"runner-prediction-{ok_id}"
    assert started.data["runner_id"] == "runner-test-1"
    assert completed.type == "runner.prediction_completed"
    assert completed.data["status"] == "succeeded" and completed.data["output"] == "hello world"
    assert set(completed.data) >= {"prediction_id", "runner_id", "status", "output", "logs", "error",
                                   "started_at", "completed_at", "predict_time"}
    assert seen[cancel_id][1].data["status"] == "canceled"
    # A prediction that ends within moments reports no start: its completion carries `started_at`.
    [ended] = seen[missing_id]
    assert ended.type == "runner.prediction_completed" and ended.data["started_at"]
    missing = ended.data
    assert missing["status"] == "failed" and "not in bucket" in missing["error"]
