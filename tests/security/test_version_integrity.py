"""Version files are verified against their id: a stored package whose bytes are not the version's is never
unpacked, and a cached tree is trusted only while it matches what was recorded when it was unpacked."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from libs.bus.nats import Bus, connect
from libs.modelpkg import ModelPackageError, build_package, fetch_package, push_model_dir
from libs.modelpkg.store import versions_bucket

pytestmark = pytest.mark.integration

HELLO = Path(__file__).resolve().parents[2] / "examples" / "hello-world"


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await connect(nats_url, name="security-integrity-test")
    await bus.ensure_streams()
    yield bus
    await bus.close()


def _variant(tmp_path: Path, greeting: str) -> Path:
    model = tmp_path / greeting
    shutil.copytree(HELLO, model)
    predict = model / "predict.py"
    predict.write_text(predict.read_text().replace('"hello "', f'"{greeting} "'))
    (model / "marker.txt").write_text(uuid.uuid4().hex)
    return model


async def test_a_stored_package_that_is_not_its_version_is_never_unpacked(bus: Bus, tmp_path: Path) -> None:
    forged = build_package(_variant(tmp_path, "pwned")).data
    version_id = hashlib.sha256(f"another version {uuid.uuid4()}".encode()).hexdigest()
    bucket = await versions_bucket(bus.js)
    await bucket.put(version_id, forged)  # whoever could write the store swapped the bytes
    cache = tmp_path / "cache"
    try:
        with pytest.raises(ModelPackageError, match="does not match its digest"):
            await fetch_package(bus.js, version_id, cache)
    finally:
        await bucket.delete(version_id)
    assert [path.name for path in cache.iterdir() if path.name != ".manifests"] == []  # no tree, no download left


async def test_a_cached_tree_without_its_record_is_fetched_again(bus: Bus, tmp_path: Path) -> None:
    pushed = await push_model_dir(bus.js, _variant(tmp_path, "howdy"))
    cache = tmp_path / "cache"
    tree = await fetch_package(bus.js, pushed.version_id, cache)
    original = (tree / "predict.py").read_bytes()
    # Swap the whole tree (record and all) for one that was never checked: it must not be taken as is.
    (cache / ".manifests" / f"{pushed.version_id}.json").unlink()
    (tree / "predict.py").chmod(0o644)
    (tree / "predict.py").write_bytes(original.replace(b"howdy", b"pwned"))
    again = await fetch_package(bus.js, pushed.version_id, cache)
    assert again == tree and (tree / "predict.py").read_bytes() == original
