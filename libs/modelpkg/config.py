"""Reading the parts of cog.yaml a Docker-free runner needs."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from libs.modelpkg.errors import ModelPackageError

COG_YAML = "cog.yaml"
MIN_PYTHON = (3, 8)
_PYTHON_VERSION = re.compile(r"^3\.(\d+)(\.\d+)?$")


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

    @property
    def python_packages(self) -> tuple[str, ...]:
        """``build.python_packages`` as pip requirement strings, in the order given."""
        return tuple(str(p).strip() for p in self.build.get("python_packages") or ())

    @property
    def system_packages(self) -> tuple[str, ...]:
        """``build.system_packages``: reported, never installed (there is no image build)."""
        return tuple(str(p).strip() for p in self.build.get("system_packages") or ())

    def warnings(self) -> list[str]:
        """What cog.yaml asks for that a Docker-free runner does not do."""
        found = []
        if self.system_packages:
            found.append(
                "build.system_packages are not installed (no image is built): " + ", ".join(self.system_packages)
            )
        current = f"{sys.version_info.major}.{sys.version_info.minor}"
        if self.python_version is not None and self.python_version != current:
            found.append(
                f"build.python_version {self.python_version} is not available; the model runs on Python {current}"
            )
        return found


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
    _check_build(path, build)
    return CogConfig(
        predict=predict.strip(),
        train=None if train is None else str(train).strip(),
        build=build,
        concurrency_max=_concurrency_max(path, raw.get("concurrency")),
        environment=_parse_environment(path, raw.get("environment") or []),
    )


def _check_build(path: Path, build: dict[str, Any]) -> None:
    version = build.get("python_version")
    if version is not None:
        # YAML reads an unquoted 3.10 as the float 3.1; cog documents quoting it, so take the text as written.
        text = str(version).strip()
        match = _PYTHON_VERSION.fullmatch(text)
        if match is None or (3, int(match.group(1))) < MIN_PYTHON:
            raise ModelPackageError(
                f"{path}: build.python_version {text!r} is not supported (Python "
                f"{MIN_PYTHON[0]}.{MIN_PYTHON[1]} or newer is required)"
            )
    for key in ("python_packages", "system_packages"):
        value = build.get(key)
        strings = isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value)
        if value is not None and not strings:
            raise ModelPackageError(f"{path}: build.{key} must be a list of strings")
    for package in build.get("python_packages") or ():
        if package.strip().startswith("-"):
            raise ModelPackageError(f"{path}: build.python_packages entry {package!r} is a pip option, not a package")
        if _names_a_location(package):
            raise ModelPackageError(
                f"{path}: build.python_packages entry {package!r} is not a package of the index: name one with its "
                "version (e.g. \"torch==2.1.0\"); URLs and paths are not installed, since the service would fetch "
                "or read them outside the model sandbox"
            )
    gpu = build.get("gpu", False)
    if not isinstance(gpu, bool):
        raise ModelPackageError(f"{path}: build.gpu must be true or false, not {gpu!r}")


_ARCHIVE_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")


def _names_a_location(requirement: str) -> bool:
    """True for a pip requirement that points somewhere instead of naming a package of the index: a direct
    reference (``name @ url``), a URL, a local path or archive. pip runs as the service, with its network and
    files, so those would reach the platform's own addresses (or read its files) on the model's behalf."""
    text = requirement.strip()
    named = text.split(";", 1)[0].strip().lower()  # what comes before the environment markers
    return (
        any(mark in text for mark in ("@", "://", "/", "\\"))
        or text.startswith((".", "~"))
        or named.startswith("file:")
        or named.endswith(_ARCHIVE_SUFFIXES)
    )


def _concurrency_max(path: Path, concurrency: Any) -> int:
    if concurrency is None:
        return 1
    value = concurrency.get("max", 1) if isinstance(concurrency, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelPackageError(f"{path}: concurrency.max must be a positive integer")
    return value


def _check_ref(path: Path, ref: str) -> None:
    module_file = ref.split(":", 1)[0]
    if not module_file.endswith(".py"):
        raise ModelPackageError(f"{path}: predictor reference {ref!r} must look like 'file.py:ClassName'")
    root = path.parent.resolve()
    target = (path.parent / module_file).resolve()
    # Only the package's own code is loaded: an absolute path, `..` or a link out would run a server file.
    if module_file.startswith(("/", "\\")) or not target.is_relative_to(root):
        raise ModelPackageError(f"{path}: predictor file {module_file!r} is outside the model directory")
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
