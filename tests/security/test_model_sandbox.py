"""Hostile models against a real runner (NATS JetStream, PostgreSQL, the sandbox as configured by default).

Each attack runs as a prediction of the `attacker` fixture model, which reports what it could do; every
attempt must fail and the prediction must still reach a clear terminal state.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import urllib.parse
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from libs.bus.nats import Bus, connect
from libs.events import Envelope
from libs.modelpkg import ModelPackageError, push_model_dir
from libs.predictions import RunnerPredictionCompleted
from services.runner.bootstrap import bootstrap
from services.runner.settings import RunnerSettings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "predictors"
SECRET = f"admin-token-{uuid.uuid4().hex}"
MEMORY_MB = 256
PIDS = 64


class Runner:
    """A runner process's worker, fed jobs over JetStream; results come back as completion events."""

    def __init__(self, bus: Bus, hardware: str, data_dir: Path) -> None:
        self.bus, self.hardware, self.data_dir = bus, hardware, data_dir
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.versions: dict[str, str] = {}

    async def on_event(self, msg: Any) -> None:
        envelope = Envelope.from_json(msg.data)
        future = self._waiting.get(envelope.data.get("prediction_id", ""))
        if envelope.type == RunnerPredictionCompleted.TYPE and future is not None and not future.done():
            future.set_result(envelope.data)

    async def predict(self, version: str, timeout: float = 120.0, **inputs: Any) -> dict[str, Any]:
        prediction_id = f"attack-{uuid.uuid4().hex[:12]}"
        done = self._waiting[prediction_id] = asyncio.get_running_loop().create_future()
        job = {"prediction_id": prediction_id, "version_id": self.versions[version], "input": inputs,
               "created_at": "2024-01-01T00:00:00+00:00", "traceparent": None}
        await self.bus.publish(f"runner.jobs.{self.hardware}", json.dumps(job).encode(), msg_id=prediction_id)
        try:
            return await asyncio.wait_for(done, timeout)
        finally:
            self._waiting.pop(prediction_id, None)

    async def attack(self, attack: str, target: str = "") -> dict[str, Any]:
        """What the attacker observed; the prediction itself must have succeeded (it reports, not raises)."""
        completed = await self.predict("attacker", attack=attack, target=target)
        assert completed["status"] == "succeeded", completed
        return json.loads(completed["output"])

    def version_dir(self, name: str) -> Path:
        return self.data_dir / "runner" / "versions" / self.versions[name]


@pytest.fixture(scope="module")
async def runner(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Runner]:
    data_dir = tmp_path_factory.mktemp("runner-data")
    state = data_dir / "state.json"
    state.write_text(json.dumps({"admin_token": SECRET}))
    state.chmod(0o600)
    with pytest.MonkeyPatch.context() as env:
        # What a real runner has in its environment: platform URLs and credentials.
        env.setenv("COGWHEEL_ADMIN_TOKEN", SECRET)
        env.setenv("COGWHEEL_NATS_URL", nats_url)
        env.setenv("COGWHEEL_SANDBOX_MEMORY_MB", str(MEMORY_MB))
        env.setenv("COGWHEEL_SANDBOX_PIDS", str(PIDS))
        bus = await connect(nats_url, name="security-test")
        await bus.ensure_streams()
        hardware = f"sec{uuid.uuid4().hex[:8]}"
        settings = RunnerSettings(nats_url=nats_url, data_dir=str(data_dir), instance_id="runner-sec",
                                  hardware=hardware)
        deps = await bootstrap(settings, bus=bus)
        runner = Runner(bus, hardware, data_dir)
        for name, path in (("attacker", FIXTURES / "attacker"), ("hello", ROOT / "examples" / "hello-world")):
            runner.versions[name] = (await push_model_dir(bus.js, path)).version_id
        subscription = await bus.nc.subscribe("runner.events.prediction.>", cb=runner.on_event)
        stop = asyncio.Event()
        task = asyncio.create_task(deps.worker.run(stop))
        try:
            # Both versions unpacked in the runner's cache, so each has files the other could go after.
            assert (await runner.predict("hello", text="x"))["output"] == "hello x"
            yield runner
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await subscription.unsubscribe()
            await bus.close()


def _host_processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if marker.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            continue
    return found


async def _until_gone(marker: str, timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (left := _host_processes_with(marker)) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return left


async def test_model_runs_unprivileged_with_its_own_uid(runner: Runner) -> None:
    seen = await runner.attack("identity")
    assert seen["ok"]
    assert seen["value"]["uid"] == 65534 and seen["value"]["gid"] == 65534
    assert 0 not in seen["value"]["groups"]
    assert seen["value"]["caps"] == ["CapEff:\t0000000000000000"]


async def test_data_dir_and_host_secrets_are_out_of_reach(runner: Runner) -> None:
    state = runner.data_dir / "state.json"
    assert SECRET in state.read_text()  # the file is there, for the host
    for attack, target in (("read", str(state)), ("listdir", str(runner.data_dir)),
                           ("listdir", str(runner.data_dir / "runner" / "versions")),
                           ("read", "/proc/1/environ"), ("read", "/etc/shadow")):
        seen = await runner.attack(attack, target)
        assert not seen["ok"], (attack, target, seen)
        assert SECRET not in json.dumps(seen)


async def test_environment_holds_no_platform_credentials(runner: Runner) -> None:
    environment = (await runner.attack("environ"))["value"]
    assert environment["MODEL_OWN_SETTING"] == "visible-to-the-model"  # cog.yaml's environment is there
    assert not [key for key in environment if key.startswith("COGWHEEL_")]
    assert SECRET not in json.dumps(environment)
    everything = await runner.attack("proc_environs")
    assert everything["ok"] and SECRET not in json.dumps(everything)


async def test_no_route_to_platform_ports_or_host_loopback(runner: Runner, nats_url: str, database_url: str) -> None:
    listener = socket.create_server(("0.0.0.0", 0))  # stands in for the registry's gRPC port and the like
    port = listener.getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3):
            pass  # reachable from the host, so a refusal below is the sandbox's doing
        nats = urllib.parse.urlsplit(nats_url)
        database = urllib.parse.urlsplit(database_url)
        host_ip = socket.gethostbyname(socket.gethostname())
        targets = [f"{nats.hostname}:{nats.port}", f"{database.hostname}:{database.port or 5432}",
                   f"127.0.0.1:{port}", f"{host_ip}:{port}"]
        for target in targets:
            seen = await runner.attack("connect", target)
            assert not seen["ok"], (target, seen)
    finally:
        listener.close()


async def test_version_files_are_read_only_and_other_versions_invisible(runner: Runner) -> None:
    own = await runner.attack("write", "/src/predict.py")
    assert not own["ok"] and ("Read-only" in own["error"] or "Permission" in own["error"])
    other_file = runner.version_dir("hello") / "predict.py"
    before = other_file.read_bytes()
    for attack in ("write", "read"):
        seen = await runner.attack(attack, str(other_file))
        assert not seen["ok"] and "FileNotFoundError" in seen["error"], seen
    assert other_file.read_bytes() == before
    own_file = runner.version_dir("attacker") / "predict.py"
    assert own_file.read_bytes() == (FIXTURES / "attacker" / "predict.py").read_bytes()


async def test_model_cannot_kill_its_runner(runner: Runner) -> None:
    for target in (str(os.getpid()), "1"):
        seen = await runner.attack("kill", target)
        assert not seen["ok"], (target, seen)
    assert (await runner.predict("hello", text="still here"))["output"] == "hello still here"


async def test_children_left_running_are_killed_when_the_prediction_ends(runner: Runner) -> None:
    marker = f"{uuid.uuid4().int % 1000 + 1000}.{uuid.uuid4().int % 10**6}"
    seen = await runner.attack("leave_children", marker)
    assert seen["ok"]
    assert await _until_gone(marker) == []
    processes = await runner.attack("processes")
    assert len(processes["value"]) == 2, processes  # the namespace's init and the worker itself


async def test_fork_bomb_is_capped_and_cleaned_up(runner: Runner) -> None:
    seen = await runner.attack("fork_bomb")
    assert seen["ok"] and seen["value"]["stopped_by"] == "BlockingIOError"
    assert seen["value"]["children"] < PIDS
    processes = await runner.attack("processes")
    assert len(processes["value"]) == 2, processes
    assert (await runner.predict("hello", text="after"))["output"] == "hello after"


async def test_memory_limit_fails_the_prediction_and_the_worker_recovers(runner: Runner) -> None:
    completed = await runner.predict("attacker", attack="allocate", target=str(MEMORY_MB * 4))
    assert completed["status"] == "failed"
    assert f"out of memory (limit {MEMORY_MB} MiB)" in completed["error"]
    assert (await runner.attack("identity"))["ok"]


async def test_returned_paths_cannot_exfiltrate_host_files(runner: Runner, tmp_path: Path) -> None:
    model = tmp_path / "exfiltrate"
    model.mkdir()
    (model / "cog.yaml").write_text('build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n')
    state = runner.data_dir / "state.json"
    (model / "predict.py").write_text(
        "import os\nfrom cog import BasePredictor, Path\n\n"
        "class Predictor(BasePredictor):\n"
        "    def predict(self, how: str) -> Path:\n"
        f"        if how == 'direct':\n            return Path({str(state)!r})\n"
        f"        os.symlink({str(state)!r}, '/tmp/innocent.txt')\n"
        "        return Path('/tmp/innocent.txt')\n"
    )
    runner.versions["exfiltrate"] = (await push_model_dir(runner.bus.js, model)).version_id
    for how in ("direct", "symlink"):
        completed = await runner.predict("exfiltrate", how=how)
        assert completed["status"] == "failed", completed
        assert "cannot be read" in completed["error"]
        assert SECRET not in json.dumps(completed)


async def test_tampered_cache_is_detected_and_fetched_again(runner: Runner) -> None:
    predict = runner.version_dir("hello") / "predict.py"
    original = predict.read_bytes()
    predict.chmod(0o644)
    predict.write_bytes(original.replace(b"hello", b"pwned"))
    completed = await runner.predict("hello", text="again")
    assert completed["status"] == "succeeded" and completed["output"] == "hello again"
    assert predict.read_bytes() == original
    assert predict.stat().st_mode & 0o777 == 0o444 and predict.stat().st_uid == 0


async def test_push_inspection_is_sandboxed_and_leaves_nothing_running(runner: Runner, tmp_path: Path) -> None:
    marker = f"{uuid.uuid4().int % 1000 + 2000}.{uuid.uuid4().int % 10**6}"
    model = tmp_path / "import_fork"
    model.mkdir()
    (model / "cog.yaml").write_text('build:\n  python_version: "3.11"\npredict: "predict.py:Predictor"\n')
    (model / "predict.py").write_text(
        "import os, subprocess\n"
        "def attempt(path):\n"
        "    try:\n        return 'READ ' + open(path).read(100)\n"
        "    except OSError as exc:\n        return 'DENIED ' + type(exc).__name__\n"
        f"subprocess.Popen(['sh', '-c', 'setsid sleep {marker} & sleep {marker}'])\n"
        "keys = sorted(k for k in os.environ if k.startswith('COGWHEEL_'))\n"
        f"raise RuntimeError('state: ' + attempt({str(runner.data_dir / 'state.json')!r}) + ' env: ' + str(keys))\n"
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("COGWHEEL_ADMIN_TOKEN", SECRET)
        began = time.monotonic()
        with pytest.raises(ModelPackageError) as refused:
            await push_model_dir(runner.bus.js, model)
        elapsed = time.monotonic() - began
    message = str(refused.value)
    assert "state: DENIED FileNotFoundError" in message and "env: []" in message
    assert SECRET not in message
    assert elapsed < 30, "a process forked at import must not hold the push until the probe's time limit"
    assert await _until_gone(marker) == []
