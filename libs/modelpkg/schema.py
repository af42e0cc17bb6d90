"""Schema generation for a model directory, run in a child process so user code never loads here."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libs.modelpkg.errors import ModelPackageError
from libs.modelpkg.openapi import build_openapi

_PROBE = Path(__file__).with_name("_probe.py")


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
) -> ModelSchema:
    """Import the predictor in a fresh interpreter and build its Cog-shaped OpenAPI schema.

    Args:
        model_dir: Directory holding cog.yaml and the predictor file.
        predictor_ref: ``predict.py:Predictor``.
        train_ref: Optional ``train.py:train``.
        python: Interpreter with the ``cog`` SDK and the model's dependencies.
        timeout: Seconds allowed for importing the predictor.

    Raises:
        ModelPackageError: the predictor cannot be imported or its signature is not a valid Cog predictor.
    """
    args = [str(_PROBE), str(Path(model_dir).resolve()), predictor_ref]
    if train_ref:
        args.append(train_ref)
    proc = await asyncio.create_subprocess_exec(
        python, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ModelPackageError(f"{model_dir}: importing {predictor_ref} took longer than {timeout:.0f}s") from None
    try:
        answer = json.loads(stdout)
    except json.JSONDecodeError:
        tail = stderr.decode(errors="replace")[-2000:]
        raise ModelPackageError(f"{model_dir}: schema probe crashed (exit {proc.returncode}): {tail}") from None
    if "error" in answer:
        raise ModelPackageError(f"{model_dir}: cannot load predictor {predictor_ref}: {answer['error']}")
    document = build_openapi(answer["predict"], answer["cog_version"], answer.get("train"))
    return ModelSchema(openapi_schema=document, cog_version=answer["cog_version"])
