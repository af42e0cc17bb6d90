"""Per-version Python environments: built once from build.python_packages, shared, layered on ours."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from libs.modelpkg import envs, load_cog_config
from libs.modelpkg.envs import READY_MARKER, ensure_environment

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "predictors"
WITH_PACKAGES = FIXTURES / "with_packages"


def _imports(python: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)


async def test_no_packages_means_our_own_interpreter(tmp_path: Path) -> None:
    config = load_cog_config(FIXTURES / "sample")
    assert await ensure_environment(FIXTURES / "sample", config, tmp_path) == sys.executable
    assert list(tmp_path.iterdir()) == []


async def test_environment_is_created_once_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_cog_config(WITH_PACKAGES)
    creations: list[Path] = []
    create = envs._create

    async def counting_create(env_dir: Path, packages: tuple[str, ...], timeout: float) -> None:
        creations.append(env_dir)
        await create(env_dir, packages, timeout)

    monkeypatch.setattr(envs, "_create", counting_create)
    # Two workers asking at once: one builds, the other waits for it on the lock.
    first, second = await asyncio.gather(
        ensure_environment(WITH_PACKAGES, config, tmp_path), ensure_environment(WITH_PACKAGES, config, tmp_path)
    )
    assert first == second != sys.executable
    marker = (Path(first).parent.parent / READY_MARKER).read_text()
    assert await ensure_environment(WITH_PACKAGES, config, tmp_path) == first
    assert len(creations) == 1
    assert (Path(first).parent.parent / READY_MARKER).read_text() == marker

    # The model's package is there; so are ours (cog, torch), without being installed again.
    check = _imports(first, "import inflection, cog, yaml; print(inflection.pluralize('wheel'), cog.__file__)")
    assert check.returncode == 0, check.stderr
    plural, cog_file = check.stdout.split()
    assert plural == "wheels"
    assert not cog_file.startswith(str(tmp_path))
    assert _imports(sys.executable, "import inflection").returncode != 0


async def test_failed_install_names_pip_error_and_leaves_nothing(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "predict.py").write_text("")
    (model / "cog.yaml").write_text(
        'predict: "predict.py:Predictor"\nbuild:\n  python_packages: ["cogwheel-no-such-package-zz==0.0.1"]\n'
    )
    config = load_cog_config(model)
    cache = tmp_path / "envs"
    from libs.modelpkg import ModelPackageError

    with pytest.raises(ModelPackageError, match="cogwheel-no-such-package-zz"):
        await ensure_environment(model, config, cache)
    assert [p for p in cache.iterdir() if p.is_dir()] == []
