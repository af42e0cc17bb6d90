"""Schema generation for a model directory, run in a child process so user code never loads here."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.modelpkg.errors import ModelPackageError
from libs.modelpkg.openapi import build_openapi
from libs.sandbox import CODE_DIR, MODEL_DIR, Launch, Sandbox, SandboxUnavailable, sandbox_python

_PROBE = Path(__file__).with_name("_probe.py")
_SANDBOXED_PROBE = f"{CODE_DIR}/_probe.py"
_default_sandbox: Sandbox | None = None


def inspection_sandbox() -> Sandbox:
    """The sandbox pushes are inspected in, as this process's ``COGWHEEL_SANDBOX*`` variables configure it."""
    global _default_sandbox
    if _default_sandbox is None:
        _default_sandbox = Sandbox()
    return _default_sandbox


@dataclass(frozen=True)
class ModelSchema:
    """The version's OpenAPI document and the cog SDK version that described it."""

    openapi_schema: dict[str, Any]
    cog_version: str


async def generate_openapi_schema(
    model_dir: Path,
    predictor_ref: str,
    *,
    train_ref: str | None = None,
    python: str = sys.executable,
    timeout: float = 120.0,
    sandbox: Sandbox | None = None,
) -> ModelSchema:
    """Import the predictor in a fresh interpreter and build its Cog-shaped OpenAPI schema.

    Args:
        model_dir: Directory holding cog.yaml and the predictor file.
        predictor_ref: ``predict.py:Predictor``.
        train_ref: Optional ``train.py:train``.
        python: Interpreter with the ``cog`` SDK and the model's dependencies.
        timeout: Seconds allowed for importing the predictor.
        sandbox: Where the import runs (default: as ``COGWHEEL_SANDBOX*`` says): no network, no environment
            of ours, the model directory read-only; whatever it starts ends with it.

    Raises:
        ModelPackageError: the predictor cannot be imported or its signature is not a valid Cog predictor.
    """
    sandbox = sandbox or inspection_sandbox()
    refs = [predictor_ref] + ([train_ref] if train_ref else [])
    launch: Launch | None = None
    scratch: Path | None = None
    if sandbox.enabled:
        try:
            await asyncio.to_thread(sandbox.require)
        except SandboxUnavailable as exc:
            raise ModelPackageError(f"cannot inspect the model: {exc}") from None
        scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="cogwheel-probe-"))
        try:
            launch = await asyncio.to_thread(
                sandbox.launch, name="probe", command=[sandbox_python(python), _SANDBOXED_PROBE, MODEL_DIR, *refs],
                model_dir=Path(model_dir).resolve(), scratch=scratch / "box", python=python,
                code={_SANDBOXED_PROBE: _PROBE},
            )
        except SandboxUnavailable as exc:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
            raise ModelPackageError(f"cannot inspect the model: {exc}") from None
        argv, env = launch.argv, launch.env
    else:
        argv, env = [python, str(_PROBE), str(Path(model_dir).resolve()), *refs], None
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise ModelPackageError(
                f"{model_dir}: importing {predictor_ref} took longer than {timeout:.0f}s"
            ) from None
    finally:
        # Everything the import started dies here, so nothing it forked outlives the push.
        out_of_memory = launch is not None and await asyncio.to_thread(launch.out_of_memory)
        if launch is not None:
            await asyncio.to_thread(launch.close)
        if scratch is not None:
            await asyncio.to_thread(shutil.rmtree, scratch, True)
    try:
        answer = json.loads(stdout)
    except json.JSONDecodeError:
        if out_of_memory and launch is not None:
            raise ModelPackageError(
                f"{model_dir}: importing {predictor_ref} ran out of memory (limit "
                f"{launch.memory_bytes // (1024 * 1024)} MiB) and was killed"
            ) from None
        tail = stderr.decode(errors="replace")[-2000:]
        raise ModelPackageError(f"{model_dir}: schema probe crashed (exit {proc.returncode}): {tail}") from None
    if "error" in answer:
        raise ModelPackageError(f"{model_dir}: cannot load predictor {predictor_ref}: {answer['error']}")
    document = build_openapi(answer["predict"], answer["cog_version"], answer.get("train"))
    return ModelSchema(openapi_schema=document, cog_version=answer["cog_version"])
