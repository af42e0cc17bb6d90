"""Pushing packaged model directories to the JetStream object store and fetching them back.

A push validates the directory (cog.yaml, per-version environment, predictor import, schema) before a single
byte is stored, so a refused directory leaves nothing behind. Packages travel as files in chunks, never whole
in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
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

from libs.modelpkg.config import CogConfig, load_cog_config
from libs.modelpkg.envs import ensure_environment
from libs.modelpkg.errors import ModelPackageError
from libs.modelpkg.package import UnpackLimits, extract_package, write_package
from libs.modelpkg.schema import generate_openapi_schema

VERSIONS_BUCKET = "cogwheel-versions"
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

    The package streams to a temporary file and is unpacked in a sibling temporary directory that is renamed
    into place, so a crash never leaves a half-written version directory behind.

    Raises:
        ModelPackageError: the version is not in the bucket or its bytes do not match its id.
    """
    cache = Path(cache_dir)
    target = cache / version_id
    if target.is_dir():
        return target
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


def _unpack_atomically(package_file: Path, cache: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        extract_package(package_file, staging)
        staging.rename(target)
    except OSError:
        # Another fetch won the race; its copy is identical by construction.
        if not target.is_dir():
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


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
