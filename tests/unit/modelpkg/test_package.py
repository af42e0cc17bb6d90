"""Deterministic packaging: same content, same version id."""

import io
import os
import shutil
import tarfile
import time
from pathlib import Path

import pytest

from libs.modelpkg import ModelPackageError, build_package, extract_package

HELLO = Path(__file__).resolve().parents[3] / "examples" / "hello-world"


def _copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(HELLO, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def test_identical_content_gives_identical_id(tmp_path: Path) -> None:
    a = _copy(tmp_path, "a")
    b = _copy(tmp_path, "b")
    os.utime(b / "predict.py", (time.time() + 1000, time.time() + 1000))
    (b / "__pycache__").mkdir()
    (b / "__pycache__" / "predict.cpython-311.pyc").write_bytes(b"junk")
    (b / ".git").mkdir()
    (b / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (b / ".cogwheel").mkdir()
    (b / ".cogwheel" / "state").write_text("x")
    (b / "stray.pyc").write_bytes(b"junk")
    assert build_package(a).version_id == build_package(b).version_id
    assert build_package(a).data == build_package(b).data


def test_changed_content_changes_id(tmp_path: Path) -> None:
    a = _copy(tmp_path, "a")
    before = build_package(a).version_id
    (a / "predict.py").write_text((a / "predict.py").read_text() + "\n# changed\n")
    assert build_package(a).version_id != before


def test_package_entries_are_sorted_and_normalised(tmp_path: Path) -> None:
    a = _copy(tmp_path, "a")
    (a / "sub").mkdir()
    (a / "sub" / "b.txt").write_text("b")
    (a / "a.txt").write_text("a")
    with tarfile.open(fileobj=io.BytesIO(build_package(a).data), mode="r:gz") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) == ["a.txt", "cog.yaml", "predict.py", "sub/b.txt"]
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    assert len({m.mtime for m in members}) == 1


def test_round_trip(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    extract_package(build_package(HELLO).data, dest)
    assert (dest / "predict.py").read_text() == (HELLO / "predict.py").read_text()


def test_refuses_non_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="not a directory"):
        build_package(tmp_path / "missing")


def test_written_package_equals_in_memory_one(tmp_path: Path) -> None:
    from libs.modelpkg import write_package

    dest = tmp_path / "pkg.tar.gz"
    version_id = write_package(HELLO, dest)
    package = build_package(HELLO)
    assert version_id == package.version_id
    assert dest.read_bytes() == package.data


def test_extract_refuses_oversized_content(tmp_path: Path) -> None:
    package = build_package(HELLO)
    with pytest.raises(ModelPackageError, match="unpacks to more than 10 bytes"):
        extract_package(package.data, tmp_path, max_size=10)
    assert list(tmp_path.iterdir()) == []


def test_extract_refuses_garbage(tmp_path: Path) -> None:
    with pytest.raises(ModelPackageError, match="not a valid .tar.gz"):
        extract_package(b"this is not a tarball", tmp_path)
