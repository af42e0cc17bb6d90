"""Pushing packaged model directories to the JetStream object store and fetching them back.

A push validates the directory (cog.yaml, per-version environment, predictor import, schema) before a single
byte is stored, so a refused directory leaves nothing behind. Packages travel as files in chunks, never whole
in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from libs.bus.subjects import VERSION_PACKAGES_BUCKET
from libs.modelpkg.config import CogConfig, load_cog_config
from libs.modelpkg.envs import ensure_environment
from libs.modelpkg.errors import ModelPackageError
from libs.modelpkg.package import UnpackLimits, extract_package, write_package
from libs.modelpkg.schema import generate_openapi_schema

log = logging.getLogger(__name__)

VERSIONS_BUCKET = VERSION_PACKAGES_BUCKET
# Unpacked size allowed for an uploaded package (weights included).
DEFAULT_MAX_UNPACKED = 20 * 1024**3


@dataclass(frozen=True)
class PushedPackage:
    """What the registry records for a version once its package is stored."""

    version_id: str
    package_key: str
    openapi_schema: dict[str, Any]
    cog_version: str
    predictor_ref: str
    train_ref: str | None = None
    gpu: bool = False
    concurrency_max: int = 1
    warnings: list[str] = field(default_factory=list)
    # False when an identical package was already stored (a repeated push).
    stored_now: bool = False


@dataclass(frozen=True)
class InspectedModel:
    """A model directory that passed every check, with its schema."""

    config: CogConfig
    openapi_schema: dict[str, Any]
    cog_version: str
    python: str


async def versions_bucket(js: JetStreamContext) -> ObjectStore:
    """The ``cogwheel-versions`` object store, created on first use."""
    try:
        return await js.object_store(VERSIONS_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(VERSIONS_BUCKET)


async def inspect_model_dir(model_dir: Path, *, env_cache_dir: Path | None = None) -> InspectedModel:
    """Check a model directory the way a push does: cog.yaml, its environment, the predictor and its schema.

    Args:
        model_dir: The directory.
        env_cache_dir: Where per-version environments are cached; without it, a directory that lists
            ``build.python_packages`` is inspected with the current interpreter only.

    Raises:
        ModelPackageError: naming what is wrong (unsupported Python version, import error, no predict,
            unsupported input type, failed package install...).
    """
    config = load_cog_config(model_dir)
    python = sys.executable
    if env_cache_dir is not None:
        python = await ensure_environment(model_dir, config, env_cache_dir)
    schema = await generate_openapi_schema(model_dir, config.predict, train_ref=config.train, python=python)
    return InspectedModel(config, schema.openapi_schema, schema.cog_version, python)


async def push_model_dir(
    js: JetStreamContext, path: Path, *, env_cache_dir: Path | None = None, known: set[str] | None = None
) -> PushedPackage:
    """Validate, package and upload a model directory; identical content is uploaded only once.

    Args:
        js: JetStream context holding the ``cogwheel-versions`` bucket.
        path: The model directory.
        env_cache_dir: See ``inspect_model_dir``.
        known: Version ids already registered; such a directory is hashed only, not inspected again
            (versions are immutable, so its schema cannot have changed).

    Raises:
        ModelPackageError: the directory is refused; nothing was stored.
    """
    model_dir = Path(path)
    with tempfile.TemporaryDirectory(prefix="cogwheel-push-") as work:
        package_file = Path(work) / "package.tar.gz"
        config = load_cog_config(model_dir)
        version_id = await asyncio.to_thread(write_package, model_dir, package_file)
        if known is not None and version_id in known:
            return PushedPackage(version_id, version_id, {}, "", config.predict, config.train, config.gpu,
                                 config.concurrency_max, config.warnings())
        inspected = await inspect_model_dir(model_dir, env_cache_dir=env_cache_dir)
        stored_now = await _store(js, version_id, package_file)
    config = inspected.config
    return PushedPackage(
        version_id=version_id,
        package_key=version_id,
        openapi_schema=inspected.openapi_schema,
        cog_version=inspected.cog_version,
        predictor_ref=config.predict,
        train_ref=config.train,
        gpu=config.gpu,
        concurrency_max=config.concurrency_max,
        warnings=config.warnings(),
        stored_now=stored_now,
    )


async def push_package_file(
    js: JetStreamContext,
    package_file: Path,
    *,
    env_cache_dir: Path | None = None,
    max_unpacked: int = DEFAULT_MAX_UNPACKED,
    work_dir: Path | None = None,
    limits: UnpackLimits | None = None,
) -> PushedPackage:
    """Push an uploaded ``.tar.gz`` of a model directory.

    It is unpacked and packed again deterministically, so the version id depends on the content only, not
    on how the client compressed it.

    Raises:
        ModelPackageError: not a valid archive, too large, or the directory inside is refused.
    """
    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="cogwheel-upload-", dir=work_dir))
    model_dir = work / "model"
    try:
        model_dir.mkdir()
        limits = limits or UnpackLimits()
        await asyncio.to_thread(extract_package, Path(package_file), model_dir, max_size=max_unpacked, limits=limits)
        # The inspection runs as the sandbox's uid: files get the modes the package records (0644/0755).
        await asyncio.to_thread(_readable_by_all, work)
        return await push_model_dir(js, model_dir, env_cache_dir=env_cache_dir)
    except ModelPackageError as exc:
        # Messages name files by the server's scratch path; the client knows them relative to its directory.
        message = str(exc).replace(f"{model_dir}: ", "").replace(f"{model_dir}/", "").replace(str(model_dir), ".")
        raise ModelPackageError(message) from None
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)  # may hold gigabytes of weights


async def delete_package(js: JetStreamContext, version_id: str) -> None:
    """Remove a stored package (used to undo an upload whose version could not be recorded)."""
    bucket = await versions_bucket(js)
    with contextlib.suppress(NotFoundError):
        await bucket.delete(version_id)


async def has_package(js: JetStreamContext, version_id: str) -> bool:
    return await _has_object(await versions_bucket(js), version_id)


async def _store(js: JetStreamContext, version_id: str, package_file: Path) -> bool:
    bucket = await versions_bucket(js)
    if await _has_object(bucket, version_id):
        return False
    with package_file.open("rb") as data:
        await bucket.put(version_id, data)
    return True


async def fetch_package(js: JetStreamContext, version_id: str, cache_dir: Path) -> Path:
    """Download and unpack a version into ``cache_dir/<version_id>``, reusing a previous unpack.

    The package's sha256 must equal the version id. It is unpacked in a sibling temporary directory that is
    renamed into place, so a crash never leaves a half-written version directory behind; the tree is then
    made read-only (owned by root when the runner is root) and its file metadata recorded. A cached
    directory is checked against that record on every use: one that changed since (a tampered or damaged
    cache) is removed and fetched again.

    Raises:
        ModelPackageError: the version is not in the bucket or its bytes do not match its id.
    """
    cache = Path(cache_dir)
    target = cache / version_id
    async with _version_lock(version_id):
        if target.is_dir():
            if await asyncio.to_thread(_matches_manifest, target, _manifest_path(cache, version_id)):
                return target
            log.warning("version %s: cached files changed since they were unpacked; fetching it again", version_id)
            await asyncio.to_thread(_remove_tree, target)
        bucket = await versions_bucket(js)
        cache.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{version_id}.", suffix=".tar.gz", dir=cache)
        os.close(fd)
        download = Path(name)
        try:
            try:
                with download.open("wb") as out:
                    await bucket.get(version_id, writeinto=out)
            except NotFoundError:
                raise ModelPackageError(f"version {version_id} is not in bucket {VERSIONS_BUCKET}") from None
            if await asyncio.to_thread(sha256_file, download) != version_id:
                raise ModelPackageError(f"version {version_id}: stored package does not match its digest")
            await asyncio.to_thread(_unpack_atomically, download, cache, target)
        finally:
            download.unlink(missing_ok=True)
    return target


_VERSION_LOCKS: dict[tuple[int, str], asyncio.Lock] = {}


def _version_lock(version_id: str) -> asyncio.Lock:
    """One check-or-unpack of a version at a time (per event loop: a lock belongs to one loop)."""
    key = (id(asyncio.get_running_loop()), version_id)
    lock = _VERSION_LOCKS.get(key)
    if lock is None:
        lock = _VERSION_LOCKS[key] = asyncio.Lock()
    return lock


def _manifest_path(cache: Path, version_id: str) -> Path:
    return cache / ".manifests" / f"{version_id}.json"


def _unpack_atomically(package_file: Path, cache: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        extract_package(package_file, staging)
        _seal(staging)
        staging.rename(target)
        manifest = _manifest_path(cache, target.name)
        manifest.parent.mkdir(mode=0o700, exist_ok=True)
        partial = manifest.with_suffix(".tmp")
        partial.write_text(json.dumps(_describe_tree(target)))
        partial.rename(manifest)
    finally:
        if staging.exists():
            _remove_tree(staging)


def _readable_by_all(root: Path) -> None:
    for directory, _, files in os.walk(root):
        os.chmod(directory, 0o755)
        for name in files:
            path = os.path.join(directory, name)
            if not os.path.islink(path):
                os.chmod(path, 0o755 if os.stat(path).st_mode & 0o100 else 0o644)


def _seal(root: Path) -> None:
    """Make a version's files read-only for everyone, and owned by root when we are root."""
    as_root = os.geteuid() == 0
    for directory, dirs, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path):
                if as_root:
                    os.lchown(path, 0, 0)
                continue
            if as_root:
                os.chown(path, 0, 0)
            executable = os.stat(path).st_mode & 0o111
            os.chmod(path, 0o555 if executable else 0o444)
        for name in dirs:
            path = os.path.join(directory, name)
            if os.path.islink(path) and as_root:
                os.lchown(path, 0, 0)
        if as_root:
            os.chown(directory, 0, 0)
        os.chmod(directory, 0o555)


def _describe_tree(root: Path) -> dict[str, list[int]]:
    """Metadata that any change to a file, directory or link alters (ctime cannot be set back)."""
    tree: dict[str, list[int]] = {}
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            tree[os.path.relpath(path, root)] = [info.st_mode, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
                                                 info.st_ino, info.st_uid]
    info = os.lstat(root)
    tree["."] = [info.st_mode, info.st_uid]
    return tree


def _matches_manifest(target: Path, manifest: Path) -> bool:
    try:
        recorded = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return False
    try:
        return _describe_tree(target) == recorded
    except OSError:
        return False


def _remove_tree(path: Path) -> None:
    """Remove a sealed (read-only) tree."""
    for directory, _, _ in os.walk(path):
        with contextlib.suppress(OSError):
            os.chmod(directory, 0o755)
    shutil.rmtree(path, ignore_errors=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


async def _has_object(bucket: ObjectStore, name: str) -> bool:
    try:
        info = await bucket.get_info(name)
    except NotFoundError:
        return False
    return not info.deleted
