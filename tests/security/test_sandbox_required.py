"""Without a working sandbox, model code does not run (unless the operator opted out explicitly); a worker's
processes end with it."""

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from libs.bus.nats import connect
from libs.events import Envelope
from libs.modelpkg import ModelPackageError, push_model_dir
from libs.modelpkg.schema import generate_openapi_schema
from libs.predictions import RunnerPredictionCompleted
from libs.sandbox import Cgroup, Limits, Sandbox, SandboxSettings
from services.runner.adapters.supervisor import WorkerSetupError, WorkerSupervisor
from services.runner.bootstrap import bootstrap
from services.runner.settings import RunnerSettings

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello-world"
ATTACKER = ROOT / "tests" / "fixtures" / "predictors" / "attacker"
BROKEN = SandboxSettings(sandbox_bwrap="/nonexistent/bwrap")


@pytest.fixture
async def supervisor() -> AsyncIterator[Callable[..., WorkerSupervisor]]:
    started: list[WorkerSupervisor] = []

    def make(model_dir: Path, sandbox: Sandbox) -> WorkerSupervisor:
        started.append(WorkerSupervisor(model_dir, "predict.py:Predictor", sandbox=sandbox))
        return started[-1]

    yield make
    for sup in started:
        await sup.stop()


async def test_runner_refuses_to_run_models_without_the_sandbox(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sandbox = Sandbox(BROKEN)
    assert "unavailable" in sandbox.describe() and "/nonexistent/bwrap" in sandbox.describe()
    sup = supervisor(HELLO, sandbox)
    for _ in range(2):  # every attempt fails the same clear way; nothing runs unsandboxed
        with pytest.raises(WorkerSetupError, match="sandbox cannot be set up.*COGWHEEL_SANDBOX=off"):
            await sup.start()
        assert sup.pid is None


@pytest.mark.integration
async def test_a_runner_without_the_sandbox_says_so_at_start_and_fails_predictions(
    nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    bus = await connect(nats_url, name="sandbox-required-test")
    version = (await push_model_dir(bus.js, HELLO)).version_id  # pushed where the sandbox works
    monkeypatch.setenv("COGWHEEL_SANDBOX_BWRAP", "/nonexistent/bwrap")  # the runner's host has no bubblewrap
    hardware = f"nosandbox{uuid.uuid4().hex[:8]}"
    completions: list[dict[str, Any]] = []

    async def on_report(msg: Any) -> None:
        envelope = Envelope.from_json(msg.data)
        if envelope.type == RunnerPredictionCompleted.TYPE:
            completions.append(envelope.data)

    stop = asyncio.Event()
    task = None
    try:
        with caplog.at_level(logging.INFO, logger="services.runner.bootstrap"):
            deps = await bootstrap(RunnerSettings(nats_url=nats_url, data_dir=str(tmp_path), hardware=hardware,
                                                  instance_id=f"runner-{hardware}"), bus=bus)
        assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
            "model sandbox unavailable, model code will not run: '/nonexistent/bwrap' not found (install the "
            "bubblewrap package)"]
        prediction_id = f"nosandbox-{uuid.uuid4().hex[:8]}"
        subscription = await bus.nc.subscribe("runner.events.prediction.completed", cb=on_report)
        task = asyncio.create_task(deps.worker.run(stop))
        job = {"prediction_id": prediction_id, "version_id": version, "input": {"text": "x"},
               "created_at": "2026-01-01T00:00:00+00:00", "traceparent": None}
        await bus.publish(f"runner.jobs.{hardware}", json.dumps(job).encode(), msg_id=prediction_id)
        for _ in range(600):
            if any(c["prediction_id"] == prediction_id for c in completions):
                break
            await asyncio.sleep(0.1)
        await subscription.unsubscribe()
    finally:
        stop.set()
        if task is not None:
            await asyncio.wait_for(task, 30)
        await bus.close()
    [completed] = [c for c in completions if c["prediction_id"] == prediction_id]
    assert completed["status"] == "failed" and "the model sandbox cannot be set up" in completed["error"]
    assert completed["output"] is None


async def test_push_inspection_refuses_without_the_sandbox() -> None:
    with pytest.raises(ModelPackageError, match="cannot inspect the model: the model sandbox cannot be set up"):
        await generate_openapi_schema(HELLO, "predict.py:Predictor", sandbox=Sandbox(BROKEN))


async def test_explicit_opt_out_runs_models_unsandboxed(supervisor: Callable[..., WorkerSupervisor]) -> None:
    sandbox = Sandbox(SandboxSettings(sandbox="off"))
    assert "OFF" in sandbox.describe()
    sup = supervisor(HELLO, sandbox)
    assert (await sup.predict("p1", {"text": "world"})).output == "hello world"
    assert sup.output_files is None and sup.prediction_dir("p1") is None
    schema = await generate_openapi_schema(HELLO, "predict.py:Predictor", sandbox=sandbox)
    assert "Input" in schema.openapi_schema["components"]["schemas"]


async def test_only_the_operators_setting_opens_the_network(supervisor: Callable[..., WorkerSupervisor]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # a port of the host, as the platform's are
    target = f"127.0.0.1:{listener.getsockname()[1]}"
    try:
        seen = {}
        for network in ("none", "host"):
            sup = supervisor(ATTACKER, Sandbox(SandboxSettings(sandbox_network=network)))
            result = await sup.predict(f"p-{network}", {"attack": "connect", "target": target})
            assert result.status == "succeeded", result.error
            seen[network] = json.loads(result.output)
    finally:
        listener.close()
    assert not seen["none"]["ok"], seen  # the default: a network namespace of its own
    assert seen["host"] == {"ok": True, "value": "connected"}, seen  # `host` shares everything the host reaches


async def test_setup_helpers_live_with_the_worker_and_die_when_it_stops(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 1000 + 3000}.{uuid.uuid4().int % 10**6}"
    model = tmp_path / "helper"
    model.mkdir()
    (model / "cog.yaml").write_text('build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n')
    (model / "predict.py").write_text(
        "import subprocess\nfrom cog import BasePredictor\n\n"
        "class Predictor(BasePredictor):\n"
        "    def setup(self):\n"
        f"        self.helper = subprocess.Popen(['sleep', '{marker}'])\n"
        "    def predict(self) -> str:\n"
        "        return 'alive' if self.helper.poll() is None else 'gone'\n"
    )
    sup = WorkerSupervisor(model, "predict.py:Predictor")
    try:
        assert (await sup.predict("p1", {})).output == "alive"
        assert (await sup.predict("p2", {})).output == "alive"  # what setup() started is the worker's own
        assert _host_processes_with(marker)
    finally:
        await sup.stop()
    assert _host_processes_with(marker) == []


def _host_processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


async def test_push_probe_over_its_time_limit_is_killed_with_everything_it_started(tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 1000 + 4000}.{uuid.uuid4().int % 10**6}"
    model = tmp_path / "slow_import"
    model.mkdir()
    (model / "predict.py").write_text(
        f"import subprocess, time\nsubprocess.Popen(['sleep', '{marker}'])\ntime.sleep(600)\n"
    )
    with pytest.raises(ModelPackageError, match="took longer than 2s"):
        await generate_openapi_schema(model, "predict.py:Predictor", timeout=2)
    assert _host_processes_with(marker) == []


@pytest.mark.parametrize(
    ("attack", "code", "message"),
    [
        ("memory", "hog = b'x' * (512 * 1024 * 1024)\n", r"ran out of memory \(limit 128 MiB\) and was killed"),
        # Stopped by whichever limit it meets first: the process count, or the memory of its copies.
        ("fork_bomb", "import os\nwhile True:\n    os.fork()\n", r"BlockingIOError|ran out of memory"),
    ],
)
async def test_push_probe_is_held_to_the_sandbox_limits(tmp_path: Path, attack: str, code: str, message: str) -> None:
    marker = f"{uuid.uuid4().int % 1000 + 5000}.{uuid.uuid4().int % 10**6}"
    model = tmp_path / attack
    model.mkdir()
    (model / "predict.py").write_text(f"import subprocess\nsubprocess.Popen(['sleep', '{marker}'])\n{code}")
    limited = Sandbox(SandboxSettings(sandbox_memory_mb=128, sandbox_pids=32))
    if limited.limits_note() is not None:
        pytest.skip(f"no cgroup on this host, only rlimits: {limited.limits_note()}")
    with pytest.raises(ModelPackageError, match=message):
        await generate_openapi_schema(model, "predict.py:Predictor", sandbox=limited, timeout=60)
    assert _host_processes_with(marker) == []


def test_cgroup_limits_are_applied() -> None:
    limits = Limits(memory_bytes=300 * 1024 * 1024, pids=50, cpus=0.5)
    group = Cgroup.create("limits-test", limits)
    try:
        if group.v2:
            directory = group.dirs["unified"]
            assert (directory / "memory.max").read_text().strip() == str(limits.memory_bytes)
            assert (directory / "pids.max").read_text().strip() == "50"
            assert (directory / "cpu.max").read_text().split() == ["50000", "100000"]
        else:
            assert (group.dirs["memory"] / "memory.limit_in_bytes").read_text().strip() == str(limits.memory_bytes)
            assert (group.dirs["pids"] / "pids.max").read_text().strip() == "50"
            assert (group.dirs["cpu"] / "cpu.cfs_quota_us").read_text().strip() == "50000"
        assert group.members() == set()
    finally:
        group.remove()
    assert not any(path.exists() for path in group.dirs.values())
