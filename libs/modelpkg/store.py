"""Pushing packaged model directories to the JetStream object store and fetching them back."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.js.client import JetStreamContext
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

from libs.modelpkg.config import load_cog_config
from libs.modelpkg.errors import ModelPackageError
from libs.modelpkg.package import build_package, extract_package
from libs.modelpkg.schema import generate_openapi_schema

VERSIONS_BUCKET = "cogwheel-versions"


@dataclass(frozen=True)
class PushedPackage:
    """What the registry records for a version once its package is stored."""

    version_id: str
    package_key: str
    openapi_schema: dict[str, Any]
    cog_version: str
    predictor_ref: str
    train_ref: str | None = None


async def versions_bucket(js: JetStreamContext) -> ObjectStore:
    """The ``cogwheel-versions`` object store, created on first use."""
    try:
        return await js.object_store(VERSIONS_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_object_store(VERSIONS_BUCKET)


async def push_model_dir(js: JetStreamContext, path: Path, *, python: str = sys.executable) -> PushedPackage:
    """Validate, package and upload a model directory; identical content is uploaded only once.

    Raises:
        ModelPackageError: no cog.yaml, no predictor reference, or the predictor fails to import.
    """
    model_dir = Path(path)
    config = load_cog_config(model_dir)
    schema = await generate_openapi_schema(model_dir, config.predict, train_ref=config.train, python=python)
    package = await asyncio.to_thread(build_package, model_dir)
    bucket = await versions_bucket(js)
    if not await _has_object(bucket, package.version_id):
        await bucket.put(package.version_id, package.data)
    return PushedPackage(
        version_id=package.version_id,
        package_key=package.version_id,
        openapi_schema=schema.openapi_schema,
        cog_version=schema.cog_version,
        predictor_ref=config.predict,
        train_ref=config.train,
    )


async def fetch_package(js: JetStreamContext, version_id: str, cache_dir: Path) -> Path:
    """Download and unpack a version into ``cache_dir/<version_id>``, reusing a previous unpack.

    The unpack happens in a sibling temporary directory and is renamed into place, so a crash never
    leaves a half-written version directory behind.

    Raises:
        ModelPackageError: the version is not in the bucket or its bytes do not match its id.
    """
    cache = Path(cache_dir)
    target = cache / version_id
    if target.is_dir():
        return target
    bucket = await versions_bucket(js)
    try:
        result = await bucket.get(version_id)
    except NotFoundError:
        raise ModelPackageError(f"version {version_id} is not in bucket {VERSIONS_BUCKET}") from None
    data = result.data or b""
    if hashlib.sha256(data).hexdigest() != version_id:
        raise ModelPackageError(f"version {version_id}: stored package does not match its digest")
    await asyncio.to_thread(_unpack_atomically, data, cache, target)
    return target


def _unpack_atomically(data: bytes, cache: Path, target: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        extract_package(data, staging)
        staging.rename(target)
    except OSError:
        # Another fetch won the race; its copy is identical by construction.
        if not target.is_dir():
            raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


async def _has_object(bucket: ObjectStore, name: str) -> bool:
    try:
        info = await bucket.get_info(name)
    except NotFoundError:
        return False
    return not info.deleted
