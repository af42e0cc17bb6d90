"""Reading the parts of cog.yaml a Docker-free runner needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from libs.modelpkg.errors import ModelPackageError

COG_YAML = "cog.yaml"


@dataclass(frozen=True)
class CogConfig:
    """The runner-relevant subset of cog.yaml.

    Attributes:
        predict: Predictor reference such as ``predict.py:Predictor`` (``run`` is accepted as its newer name).
        train: Training reference, or None.
        build: The raw ``build`` mapping (python_version, gpu, python_packages, ...).
        concurrency_max: ``concurrency.max`` (1 when absent).
        environment: ``environment`` entries parsed from ``KEY=VALUE`` strings.
    """

    predict: str
    train: str | None = None
    build: dict[str, Any] = field(default_factory=dict)
    concurrency_max: int = 1
    environment: dict[str, str] = field(default_factory=dict)

    @property
    def python_version(self) -> str | None:
        value = self.build.get("python_version")
        return None if value is None else str(value)

    @property
    def gpu(self) -> bool:
        return bool(self.build.get("gpu", False))


def load_cog_config(model_dir: Path) -> CogConfig:
    """Parse ``model_dir/cog.yaml``.

    Raises:
        ModelPackageError: the file is missing, is not a mapping, or names no predictor.
    """
    path = Path(model_dir) / COG_YAML
    if not path.is_file():
        raise ModelPackageError(f"{model_dir}: no cog.yaml found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ModelPackageError(f"{path}: invalid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelPackageError(f"{path}: expected a mapping at the top level")
    predict = raw.get("run") or raw.get("predict")
    if not isinstance(predict, str) or not predict.strip():
        raise ModelPackageError(f"{path}: no predictor reference (set `predict: \"predict.py:Predictor\"`)")
    _check_ref(path, predict)
    train = raw.get("train")
    if train is not None:
        _check_ref(path, str(train))
    build = raw.get("build") or {}
    if not isinstance(build, dict):
        raise ModelPackageError(f"{path}: `build` must be a mapping")
    concurrency = raw.get("concurrency") or {}
    return CogConfig(
        predict=predict.strip(),
        train=None if train is None else str(train).strip(),
        build=build,
        concurrency_max=int(concurrency.get("max", 1)) if isinstance(concurrency, dict) else 1,
        environment=_parse_environment(path, raw.get("environment") or []),
    )


def _check_ref(path: Path, ref: str) -> None:
    module_file = ref.split(":", 1)[0]
    if not module_file.endswith(".py"):
        raise ModelPackageError(f"{path}: predictor reference {ref!r} must look like 'file.py:ClassName'")
    if not (path.parent / module_file).is_file():
        raise ModelPackageError(f"{path}: predictor file {module_file!r} does not exist")


def _parse_environment(path: Path, entries: Any) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = str(entry).partition("=")
        if not sep or not key:
            raise ModelPackageError(f"{path}: environment entry {entry!r} is not KEY=VALUE")
        env[key] = value
    return env
