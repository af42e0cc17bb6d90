"""Files a sandboxed model names are read only from its own directories, never through links."""

import os
from pathlib import Path

import pytest

from libs.sandbox import ForbiddenPath, Mount, SandboxFiles


@pytest.fixture
def layout(tmp_path: Path) -> tuple[SandboxFiles, Path, Path, Path]:
    tmp, src, secret = tmp_path / "box-tmp", tmp_path / "version", tmp_path / "state.json"
    tmp.mkdir()
    src.mkdir()
    secret.write_text("admin token")
    files = SandboxFiles([Mount("/tmp", tmp, removable=True), Mount("/src", src)])
    return files, tmp, src, secret


def test_reads_files_of_its_own_directories(layout: tuple[SandboxFiles, Path, Path, Path]) -> None:
    files, tmp, src, _ = layout
    (tmp / "out").mkdir()
    (tmp / "out" / "image.png").write_bytes(b"png")
    (src / "asset.txt").write_bytes(b"asset")
    assert files.read_bytes("/tmp/out/image.png") == b"png"
    assert files.read_bytes("/tmp/./out//image.png") == b"png"
    assert files.read_bytes("/src/asset.txt") == b"asset"


def test_refuses_paths_outside_and_links(layout: tuple[SandboxFiles, Path, Path, Path]) -> None:
    files, tmp, _, secret = layout
    (tmp / "innocent.txt").symlink_to(secret)
    (tmp / "dir").symlink_to(secret.parent)
    os.mkfifo(tmp / "pipe")
    for path in ("/etc/passwd", "/tmp/../etc/passwd", "/src/../tmp/../etc/passwd", "/tmp/innocent.txt",
                 f"/tmp/dir/{secret.name}", "relative.txt", "/tmp"):
        with pytest.raises(ForbiddenPath):
            files.read_bytes(path)
    with pytest.raises(ForbiddenPath, match="not a regular file"):
        files.read_bytes("/tmp/pipe")


def test_removes_only_temporary_files_and_never_through_links(
    layout: tuple[SandboxFiles, Path, Path, Path],
) -> None:
    files, tmp, src, secret = layout
    (tmp / "out.txt").write_text("x")
    (src / "weights.bin").write_text("w")
    (tmp / "dir").symlink_to(secret.parent)
    files.remove("/tmp/out.txt")
    files.remove("/src/weights.bin")
    files.remove(f"/tmp/dir/{secret.name}")
    files.remove(str(secret))
    assert not (tmp / "out.txt").exists()
    assert (src / "weights.bin").exists()
    assert secret.read_text() == "admin token"
