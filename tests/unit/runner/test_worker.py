"""RunnerWorker job handling with fakes for the bus, the package store and the model process."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libs.bus.consumer import ReceivedMessage
from libs.events import Envelope
from libs.modelpkg import ModelPackageError
from libs.sealing import SEALED_INPUT, generate_key_pair, seal_json
from services.runner.adapters import protocol as p
from services.runner.adapters.supervisor import PredictionResult, WorkerSetupError
from services.runner.instances import InstanceHost
from services.runner.worker import RunnerWorker


class FakeBus:
    def __init__(self) -> None:
        self.js = object()
        self.published: list[tuple[str, Envelope, str]] = []

    async def publish(self, subject: str, data: bytes, *, msg_id: str, headers: dict[str, str] | None = None) -> None:
        self.published.append((subject, Envelope.from_json(data), msg_id))


class FakeSupervisor:
    instances: list["FakeSupervisor"] = []

    def __init__(self, model_dir: Path, predictor_ref: str, fail_setup: bool = False) -> None:
        self.model_dir, self.predictor_ref, self.fail_setup = model_dir, predictor_ref, fail_setup
        self.stopped = False
        self.alive = False
        self.slots = 1
        self.setup_logs = "setting up\n"
        self.file_inputs: frozenset[str] = frozenset()
        self.calls: list[str] = []
        FakeSupervisor.instances.append(self)

    async def start(self) -> None:
        if self.fail_setup:
            raise WorkerSetupError("setup of predict.py:Predictor failed: boom", "loading\n")
        self.alive = True

    async def predict(self, prediction_id: str, input: dict[str, Any], on_event: Any = None) -> PredictionResult:
        self.calls.append(prediction_id)
        on_event(p.Log(id=prediction_id, text="log\n"))
        on_event(p.Output(id=prediction_id, value="hello " + input["text"]))
        now = datetime.now(UTC)
        return PredictionResult("succeeded", "hello " + input["text"], "log\n", None, now, now, 0.01)

    async def cancel(self, prediction_id: str) -> bool:
        return False

    async def stop(self) -> None:
        self.stopped = True


async def fake_fetch(js: Any, version_id: str, cache_dir: Path) -> Path:
    if version_id == "missing":
        raise ModelPackageError(f"version {version_id} is not in bucket cogwheel-versions")
    model_dir = cache_dir / version_id
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "cog.yaml").write_text('predict: "predict.py:Predictor"\n')
    (model_dir / "predict.py").write_text("")
    return model_dir


def _message(job: dict[str, Any]) -> ReceivedMessage:
    return ReceivedMessage("runner.jobs.cpu", json.dumps(job).encode(), {}, 1, None)  # type: ignore[arg-type]


def _job(pid: str, version: str = "v1") -> dict[str, Any]:
    return {"prediction_id": pid, "version_id": version, "predictor_ref": "predict.py:Predictor",
            "input": {"text": "world"}, "created_at": "2024-01-01T00:00:00Z", "traceparent": None}


@pytest.fixture
def worker(tmp_path: Path) -> tuple[RunnerWorker, FakeBus]:
    FakeSupervisor.instances.clear()
    bus = FakeBus()
    runner = RunnerWorker(bus, runner_id="r1", cache_dir=tmp_path, fetch_package=fake_fetch,  # type: ignore[arg-type]
                          max_loaded=2, supervisor_factory=FakeSupervisor)
    return runner, bus


async def test_publishes_started_then_completed(worker: tuple[RunnerWorker, FakeBus]) -> None:
    runner, bus = worker
    await runner.handle_job(_message(_job("p1")))
    progress = [env for subject, env, _ in bus.published if subject.endswith(".progress")]
    (s_subject, started, s_id), (c_subject, completed, c_id) = [
        entry for entry in bus.published if not entry[0].endswith(".progress")
    ]
    assert s_subject == "runner.events.prediction.started" and started.type == "runner.prediction_started"
    assert c_subject == "runner.events.prediction.completed" and completed.stream_version == 2 + len(progress)
    assert [env.data["seq"] for env in progress] == list(range(1, len(progress) + 1))
    assert started.stream_id == completed.stream_id == "runner-prediction-p1"
    assert s_id == started.id and c_id == completed.id != started.id
    assert completed.data["output"] == "hello world" and completed.data["runner_id"] == "r1"
    assert completed.data["logs"] == "setting up\nlog\n"


async def test_reuses_and_evicts_loaded_versions(worker: tuple[RunnerWorker, FakeBus]) -> None:
    runner, _ = worker
    for pid, version in (("a", "v1"), ("b", "v1"), ("c", "v2"), ("d", "v3")):
        await runner.handle_job(_message(_job(pid, version)))
    first, second, third = FakeSupervisor.instances
    assert first.calls == ["a", "b"] and first.stopped
    assert not second.stopped and not third.stopped


async def test_missing_package_fails_prediction(worker: tuple[RunnerWorker, FakeBus]) -> None:
    runner, bus = worker
    await runner.handle_job(_message(_job("p1", "missing")))
    completed = bus.published[-1][1]
    assert completed.data["status"] == "failed" and "not in bucket" in completed.data["error"]


async def test_a_broken_cached_version_fails_without_naming_the_cache(tmp_path: Path) -> None:
    async def broken_fetch(js: Any, version_id: str, cache_dir: Path) -> Path:
        model_dir = cache_dir / version_id
        model_dir.mkdir(parents=True, exist_ok=True)
        (model_dir / "cog.yaml").write_text('predict: "../elsewhere.py:Predictor"\n')
        return model_dir

    bus = FakeBus()
    cache = tmp_path / "runner" / "versions"
    runner = RunnerWorker(bus, runner_id="r1", cache_dir=cache, fetch_package=broken_fetch,  # type: ignore[arg-type]
                          max_loaded=2, supervisor_factory=FakeSupervisor)
    await runner.handle_job(_message(_job("p1")))
    error = bus.published[-1][1].data["error"]
    assert "cannot load version v1: v1/cog.yaml: predictor file '../elsewhere.py' is outside" in error
    assert str(tmp_path) not in error
    # An instance booted for a deployment reports the same reason to the scheduler (and its operators).
    host = InstanceHost(runner)
    host.load({"instance_id": "i1", "version_id": "v2", "subject": "runner.queues.q", "durable": "q"})
    task = host.instances["i1"].task
    assert task is not None
    await task
    [failed] = [env for _, env, _ in bus.published if env.data.get("instance_id") == "i1" and "reason" in env.data]
    assert failed.data["reason"].startswith("cannot load version v2: v2/cog.yaml: predictor file '../elsewhere.py'")
    assert str(tmp_path) not in failed.data["reason"]


async def test_setup_failure_fails_and_unloads(worker: tuple[RunnerWorker, FakeBus], tmp_path: Path) -> None:
    runner, bus = worker
    runner._factory = lambda d, r: FakeSupervisor(d, r, fail_setup=True)
    await runner.handle_job(_message(_job("p1")))
    completed = bus.published[-1][1].data
    assert completed["status"] == "failed" and completed["error"].endswith("boom")
    assert completed["logs"] == "loading\n"
    assert FakeSupervisor.instances[0].stopped


async def test_cancel_before_job_arrives(worker: tuple[RunnerWorker, FakeBus]) -> None:
    runner, bus = worker
    await runner.cancel("p1")
    await runner.handle_job(_message(_job("p1")))
    assert [env.data["status"] for _, env, _ in bus.published] == ["canceled"]
    assert not FakeSupervisor.instances
    assert not FakeSupervisor.instances


async def test_sealed_secret_inputs_are_opened_for_the_model(tmp_path: Path) -> None:
    private, public = generate_key_pair()
    bus = FakeBus()
    runner = RunnerWorker(bus, runner_id="r1", cache_dir=tmp_path, fetch_package=fake_fetch,  # type: ignore[arg-type]
                          supervisor_factory=FakeSupervisor, secrets_key=private)
    job = _job("p1") | {"input": {"text": "**********"}, SEALED_INPUT: seal_json({"text": "world"}, public)}
    await runner.handle_job(_message(job))
    assert bus.published[-1][1].data["output"] == "hello world"


async def test_sealed_inputs_without_a_key_fail_clearly(worker: tuple[RunnerWorker, FakeBus]) -> None:
    runner, bus = worker
    _, public = generate_key_pair()
    await runner.handle_job(_message(_job("p1") | {SEALED_INPUT: seal_json({"text": "world"}, public)}))
    completed = bus.published[-1][1].data
    assert completed["status"] == "failed" and "cannot open the secret inputs" in completed["error"]
    assert "world" not in json.dumps(completed)
