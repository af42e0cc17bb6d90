"""Per-version Python environments for ``build.python_packages``, layered on the running interpreter.

An environment is a venv whose ``site-packages`` comes first on ``sys.path`` and whose ``.pth`` file then
adds the running interpreter's own ``site-packages``: torch, the cog SDK and everything else the runner has
are shared, and only what the model lists is installed. Environments are keyed by the package list (and
the base interpreter), so every version asking for the same packages shares one, and are built once under
a file lock that serialises workers of every process on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import site
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

from libs.modelpkg.config import CogConfig
from libs.modelpkg.errors import ModelPackageError

log = logging.getLogger(__name__)

READY_MARKER = "cogwheel-env.json"
DEFAULT_INSTALL_TIMEOUT = 900.0


def environment_key(packages: tuple[str, ...], base_python: str = sys.executable) -> str:
    """Content address of an environment: the sorted package list and the interpreter it is layered on."""
    identity = {"packages": sorted(packages), "python": os.path.realpath(base_python), "version": sys.version}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:32]


async def ensure_environment(
    model_dir: Path, config: CogConfig, cache_dir: Path, *, install_timeout: float = DEFAULT_INSTALL_TIMEOUT
) -> str:
    """The interpreter that runs ``model_dir``: the current one, or a cached venv with its python_packages.

    Args:
        model_dir: The model directory (unused today beyond error messages; requirement files would live here).
        config: Its parsed cog.yaml.
        cache_dir: Where environments live (``<cache_dir>/<key>``); shared by every worker on the machine.
        install_timeout: Seconds allowed for ``pip install``.

    Raises:
        ModelPackageError: pip failed (the message carries the tail of its output) or took too long.
    """
    packages = config.python_packages
    if not packages:
        return sys.executable
    env_dir = Path(cache_dir) / environment_key(packages)
    python = env_dir / "bin" / "python"
    if (env_dir / READY_MARKER).is_file():
        return str(python)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    lock_path = Path(cache_dir) / f"{env_dir.name}.lock"
    lock_fd = await asyncio.to_thread(_acquire, lock_path)
    try:
        if not (env_dir / READY_MARKER).is_file():
            log.info("creating Python environment %s for %s: %s", env_dir.name, Path(model_dir).name, packages)
            await _create(env_dir, packages, install_timeout)
    finally:
        _release(lock_fd)
    return str(python)


def _acquire(lock_path: Path) -> int:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _release(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


async def _create(env_dir: Path, packages: tuple[str, ...], install_timeout: float) -> None:
    started = time.monotonic()
    await asyncio.to_thread(shutil.rmtree, env_dir, True)  # a half-built one from a crashed attempt
    try:
        await _run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(env_dir)], 120.0)
        python = env_dir / "bin" / "python"
        await asyncio.to_thread(_link_base_site_packages, python)
        # The runner's pip installs into the new environment, so the environment needs no pip of its own.
        # Wheels only: building a source distribution runs its code as this service, outside the sandbox.
        await _run(
            [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-input",
             "--disable-pip-version-check", "--quiet", "--only-binary=:all:", *packages],
            install_timeout,
        )
        marker = {"packages": list(packages), "seconds": round(time.monotonic() - started, 3)}
        await asyncio.to_thread((env_dir / READY_MARKER).write_text, json.dumps(marker))
    except BaseException:
        await asyncio.to_thread(shutil.rmtree, env_dir, True)
        raise
    log.info("environment %s ready in %.1fs", env_dir.name, time.monotonic() - started)


def _link_base_site_packages(python: Path) -> None:
    """Make the running interpreter's site-packages visible after the venv's own ones.

    ``--system-site-packages`` only reaches the base installation; when the runner itself runs in a venv,
    its packages live elsewhere, so a ``.pth`` file (processed at start-up, appended to ``sys.path``) adds them.
    """
    env_site = _site_packages_of(python)
    lines = [p for p in _base_site_dirs() if os.path.realpath(p) != os.path.realpath(env_site)]
    (Path(env_site) / "_cogwheel_base.pth").write_text("".join(f"{line}\n" for line in lines))


def _base_site_dirs() -> Iterator[str]:
    seen: set[str] = set()
    for path in [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]:
        if path not in seen and os.path.isdir(path):
            seen.add(path)
            yield path


def _site_packages_of(python: Path) -> str:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = python.parent.parent / "lib" / version / "site-packages"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


async def _run(argv: list[str], timeout: float) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ModelPackageError(f"{' '.join(argv[:4])} took longer than {timeout:.0f}s") from None
    if proc.returncode != 0:
        tail = output.decode(errors="replace").strip()[-2000:]
        raise ModelPackageError(f"installing build.python_packages failed (exit {proc.returncode}): {tail}")
