"""Without a working sandbox, model code does not run (unless the operator opted out explicitly)."""

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from libs.modelpkg import ModelPackageError
from libs.modelpkg.schema import generate_openapi_schema
from libs.sandbox import Sandbox, SandboxSettings
from services.runner.adapters.supervisor import WorkerSetupError, WorkerSupervisor

ROOT = Path(__file__).resolve().parents[2]
HELLO = ROOT / "examples" / "hello-world"
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
