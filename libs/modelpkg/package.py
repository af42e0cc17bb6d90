"""Deterministic tar.gz packaging of a model directory; its sha256 is the version id."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from libs.modelpkg.errors import ModelPackageError

_SKIP_DIRS = frozenset({".git", "__pycache__", ".cogwheel", ".cog", ".venv", ".pytest_cache", ".mypy_cache"})
_SKIP_SUFFIXES = (".pyc", ".pyo")
# A fixed, non-zero timestamp: some extractors warn on epoch-0 files.
_FIXED_MTIME = 1_577_836_800  # 2020-01-01T00:00:00Z


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
    """Pack ``model_dir`` so identical content always yields identical bytes.

    Raises:
        ModelPackageError: ``model_dir`` is not a directory.
    """
    root = Path(model_dir)
    if not root.is_dir():
        raise ModelPackageError(f"{model_dir}: not a directory")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in iter_model_files(root):
            content = (root / rel).read_bytes()
            info = tarfile.TarInfo(rel.as_posix())
            info.size = len(content)
            info.mtime = _FIXED_MTIME
            info.mode = 0o755 if os.access(root / rel, os.X_OK) else 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    data = gzip.compress(raw.getvalue(), compresslevel=6, mtime=0)
    return Package(data=data, version_id=hashlib.sha256(data).hexdigest())


def extract_package(data: bytes, dest: Path) -> None:
    """Unpack package bytes into ``dest`` (which must exist), refusing entries that escape it."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(dest, filter="data")
