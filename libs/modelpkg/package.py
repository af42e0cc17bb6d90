"""Deterministic tar.gz packaging of a model directory; its sha256 is the version id."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from libs.modelpkg.errors import ModelPackageError

_SKIP_DIRS = frozenset({".git", "__pycache__", ".cogwheel", ".cog", ".venv", ".pytest_cache", ".mypy_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
# A fixed, non-zero timestamp: some extractors warn on epoch-0 files.
_FIXED_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z


@dataclass(frozen=True)
class UnpackLimits:
    """What an uploaded archive may unpack to; checked on each entry's header, before its bytes are inflated.

    A 2 MB upload that inflates to gigabytes (a decompression bomb), or a hundred thousand empty files, is
    refused at the first entry beyond a limit, without writing or even decompressing the rest.
    """

    # Bytes of all files together.
    max_size: int | None = None
    # Entries (files and directories).
    max_entries: int | None = 20_000
    # Unpacked bytes per compressed byte, once more than `ratio_grace_bytes` are unpacked: model files
    # (weights, code) compress a few times at most; zeros compress a thousandfold.
    max_ratio: float | None = 200.0
    ratio_grace_bytes: int = 64 * 1024 * 1024
    # Path components of one entry (`a/b/c.py` has 3).
    max_depth: int | None = 32


@dataclass(frozen=True)
class Package:
    """Packaged bytes of a model directory and their content address."""

    data: bytes
    version_id: str


def iter_model_files(model_dir: Path) -> list[Path]:
    """Files that belong to the package, relative to ``model_dir``, in a stable order."""
    root = Path(model_dir)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(dirpath) / name
            if path.is_symlink() or not path.is_file():
                continue
            found.append(path.relative_to(root))
    return sorted(found, key=lambda p: p.as_posix())


def build_package(model_dir: Path) -> Package:
    """Pack ``model_dir`` in memory (small directories, tests); see ``write_package`` for large ones."""
    raw = io.BytesIO()
    version_id = _write(model_dir, raw)
    return Package(data=raw.getvalue(), version_id=version_id)


def write_package(model_dir: Path, dest: Path) -> str:
    """Pack ``model_dir`` into the file ``dest`` without holding it in memory; returns the version id.

    Identical content always yields identical bytes, so the id is the content's address.

    Raises:
        ModelPackageError: ``model_dir`` is not a directory.
    """
    with open(dest, "wb") as out:
        return _write(model_dir, out)


class _HashingWriter(io.RawIOBase):
    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        return self._out.write(data) or len(data)


def _write(model_dir: Path, out: BinaryIO) -> str:
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelPackageError(f"{model_dir}: not a directory")
    writer = _HashingWriter(out)
    # filename="" and mtime=0 keep the gzip header free of anything but the content.
    with gzip.GzipFile(filename="", mode="wb", fileobj=writer, compresslevel=6, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel in iter_model_files(root):
                path = root / rel
                info = tarfile.TarInfo(rel.as_posix())
                info.size = path.stat().st_size
                info.mtime = _FIXED_MTIME
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                with path.open("rb") as content:
                    tar.addfile(info, content)
    return writer.sha256.hexdigest()


def extract_package(
    data: bytes | Path, dest: Path, *, max_size: int | None = None, limits: UnpackLimits | None = None
) -> None:
    """Unpack package bytes (or a package file) into ``dest`` (which must exist).

    Entries that would escape ``dest``, links out of it and devices are refused; so is an archive beyond
    ``limits`` (or whose files add up to more than ``max_size`` bytes). The archive is read as a stream and
    each entry checked on its header, so a refused archive is never inflated whole.

    Raises:
        ModelPackageError: the archive is not a gzipped tar, is too large or holds a forbidden entry.
    """
    limits = limits or UnpackLimits(max_size=max_size, max_entries=None, max_ratio=None, max_depth=None)
    if max_size is not None and (limits.max_size is None or max_size < limits.max_size):
        limits = UnpackLimits(
            max_size, limits.max_entries, limits.max_ratio, limits.ratio_grace_bytes, limits.max_depth
        )
    compressed = data.stat().st_size if isinstance(data, Path) else len(data)
    source = open(data, "rb") if isinstance(data, Path) else io.BytesIO(data)  # noqa: SIM115 - closed below
    try:
        with tarfile.open(fileobj=source, mode="r|gz") as tar:
            entries = total = 0
            for member in tar:
                entries += 1
                total += member.size
                _check_entry(member, entries, total, compressed, limits)
                tar.extract(member, dest, filter="data")
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ModelPackageError(f"package is not a valid .tar.gz archive: {_without_paths(exc, dest)}") from None
    finally:
        source.close()


def _check_entry(member: tarfile.TarInfo, entries: int, total: int, compressed: int, limits: UnpackLimits) -> None:
    if limits.max_entries is not None and entries > limits.max_entries:
        raise ModelPackageError(f"package holds more than {limits.max_entries} files and directories")
    if limits.max_size is not None and total > limits.max_size:
        raise ModelPackageError(f"package unpacks to more than {limits.max_size} bytes")
    if (
        limits.max_ratio is not None
        and total > limits.ratio_grace_bytes
        and total > limits.max_ratio * max(compressed, 1)
    ):
        raise ModelPackageError(
            f"package unpacks to more than {limits.max_ratio:g} times its compressed size "
            f"({compressed} bytes): refused as a decompression bomb"
        )
    if limits.max_depth is not None and len(PurePosixPath(member.name).parts) > limits.max_depth:
        raise ModelPackageError(f"package nests directories deeper than {limits.max_depth} levels")
    if len(member.name) > 1024:
        raise ModelPackageError("package holds a path longer than 1024 characters")


def _without_paths(exc: BaseException, dest: Path) -> str:
    """The error's text with the server's scratch directory left out."""
    return str(exc).replace(f"{dest}/", "").replace(str(dest), ".")
