"""Pushed archives are checked entry by entry: decompression bombs, file-count bombs and deep nesting are refused
before they are inflated, with a message and no server paths."""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from pathlib import Path

import pytest

from libs.modelpkg import ModelPackageError, UnpackLimits, extract_package, load_cog_config, push_package_file

MIB = 1024 * 1024


def _tar_gz(entries: list[tuple[str, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for name, content in entries:
            info = tarfile.TarInfo(name)
            if content is None:
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return raw.getvalue()


def _declared_only(name: str, size: int) -> bytes:
    """An archive whose first header claims ``size`` bytes that never follow: refusing it must not read on."""
    info = tarfile.TarInfo(name)
    info.size = size
    return gzip.compress(info.tobuf(format=tarfile.PAX_FORMAT))


def _files(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_a_decompression_bomb_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    bomb = _tar_gz([("cog.yaml", b"predict: predict.py:P\n"), ("weights.bin", bytes(16 * MIB))])
    assert len(bomb) < 64 * 1024
    limits = UnpackLimits(max_ratio=20, ratio_grace_bytes=MIB)
    with pytest.raises(ModelPackageError, match="times its compressed size .* decompression bomb"):
        extract_package(bomb, tmp_path, limits=limits)
    assert sum(path.stat().st_size for path in _files(tmp_path)) < MIB


def test_a_2_gib_entry_in_a_small_upload_is_refused_on_its_header(tmp_path: Path) -> None:
    started = time.monotonic()
    with pytest.raises(ModelPackageError, match="decompression bomb"):
        extract_package(_declared_only("zeros.bin", 2 * 1024**3), tmp_path, limits=UnpackLimits())
    assert time.monotonic() - started < 1
    assert _files(tmp_path) == []


def test_a_file_count_bomb_is_refused(tmp_path: Path) -> None:
    archive = _tar_gz([(f"f{i}", b"") for i in range(101)])
    with pytest.raises(ModelPackageError, match="more than 100 files and directories"):
        extract_package(archive, tmp_path, limits=UnpackLimits(max_entries=100))
    assert len(_files(tmp_path)) == 100  # the 101st is refused on its header, before it is written


def test_total_size_is_bounded(tmp_path: Path) -> None:
    archive = _tar_gz([("a", b"x" * 600), ("b", b"y" * 600)])
    with pytest.raises(ModelPackageError, match="unpacks to more than 1000 bytes"):
        extract_package(archive, tmp_path, limits=UnpackLimits(max_size=1000))


async def test_deep_nesting_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    deep = "/".join(["d"] * 2100)
    archive = tmp_path / "deep.tar.gz"
    archive.write_bytes(_tar_gz([("cog.yaml", b"predict: predict.py:P\n"), (deep, None), (deep + "/x.py", b"")]))
    with pytest.raises(ModelPackageError) as refused:
        await push_package_file(None, archive, work_dir=tmp_path)  # type: ignore[arg-type] - refused before storing
    message = str(refused.value)
    assert "deeper than 32 levels" in message and str(tmp_path) not in message


def test_an_ordinary_package_still_unpacks(tmp_path: Path) -> None:
    package = _tar_gz([("cog.yaml", b"predict: predict.py:P\n"), ("src", None), ("src/predict.py", b"x = 1\n" * 1000)])
    defaults = UnpackLimits()
    assert (defaults.max_entries, defaults.max_ratio, defaults.max_depth) == (20_000, 200, 32)
    extract_package(package, tmp_path, limits=defaults)
    assert (tmp_path / "src" / "predict.py").read_bytes() == b"x = 1\n" * 1000


def test_traversal_and_outward_links_stay_refused(tmp_path: Path) -> None:
    raw = io.BytesIO()
    with gzip.GzipFile(fileobj=raw, mode="wb") as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(ModelPackageError):
        extract_package(raw.getvalue(), tmp_path, limits=UnpackLimits())
    with pytest.raises(ModelPackageError):
        extract_package(_tar_gz([("../outside.txt", b"x")]), tmp_path / "in", limits=UnpackLimits())
    assert not (tmp_path / "outside.txt").exists()


@pytest.mark.parametrize("ref", ["/etc/passwd.py:P", "../outside.py:P", "sub/../../outside.py:P", "link.py:P"])
def test_predictor_files_must_sit_inside_the_package(tmp_path: Path, ref: str) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (tmp_path / "outside.py").write_text("class P: ...\n")
    (model / "sub").mkdir()
    (model / "link.py").symlink_to(tmp_path / "outside.py")
    (model / "cog.yaml").write_text(f'predict: "{ref}"\n')
    with pytest.raises(ModelPackageError, match="outside the model directory"):
        load_cog_config(model)


def test_a_predictor_inside_the_package_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "predict.py").write_text("class P: ...\n")
    (tmp_path / "cog.yaml").write_text('predict: "src/predict.py:P"\n')
    assert load_cog_config(tmp_path).predict == "src/predict.py:P"
