"""Reading and removing files a sandboxed model names, without following it anywhere else.

The runner runs as a privileged user and the model controls the paths it returns (and the directory it
writes them in). A path is therefore mapped onto one of the sandbox's own directories and opened one
component at a time with ``O_NOFOLLOW``: a symlink, ``..`` or a swapped directory can never lead outside.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class ForbiddenPath(PermissionError):
    """The path is outside the directories the model may hand files back from, or not a regular file."""


@dataclass(frozen=True)
class Mount:
    """A host directory the model sees at ``inside``; ``removable`` files may be deleted after upload."""

    inside: str
    host: Path
    removable: bool = False


class SandboxFiles:
    """Files of one sandbox, addressed by the paths the model sees."""

    def __init__(self, mounts: list[Mount]) -> None:
        # Longest prefix first, so /tmp/inputs wins over /tmp.
        self._mounts = sorted(mounts, key=lambda m: len(m.inside), reverse=True)

    def _locate(self, path: str) -> tuple[Mount, list[str]]:
        normal = posixpath.normpath(path)
        if not normal.startswith("/"):
            raise ForbiddenPath(f"{path!r} is not an absolute path")
        for mount in self._mounts:
            prefix = mount.inside.rstrip("/")
            if normal == prefix or normal.startswith(prefix + "/"):
                parts = [part for part in normal[len(prefix):].split("/") if part]
                if not parts or any(part in (".", "..") for part in parts):
                    break
                return mount, parts
        raise ForbiddenPath(f"{path!r} is outside the model's directories")

    def read_bytes(self, path: str) -> bytes:
        mount, parts = self._locate(path)
        with _opened_beneath(mount.host, parts) as (_, fd):
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ForbiddenPath(f"{path!r} is not a regular file")
            chunks = []
            while chunk := os.read(fd, 1 << 20):
                chunks.append(chunk)
            return b"".join(chunks)

    def remove(self, path: str) -> None:
        """Delete a file the model wrote to its temporary directory (other files are left alone)."""
        try:
            mount, parts = self._locate(path)
        except ForbiddenPath:
            return
        if not mount.removable:
            return
        with contextlib.suppress(OSError), _opened_beneath(mount.host, parts[:-1], directory=True) as (_, fd):
            os.unlink(parts[-1], dir_fd=fd)


@contextlib.contextmanager
def _opened_beneath(root: Path, parts: list[str], *, directory: bool = False) -> Iterator[tuple[str, int]]:
    """An fd of ``root/parts...``, every component opened without following symlinks."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root, flags | os.O_DIRECTORY)
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if last and not directory:
                child_flags = flags | os.O_NONBLOCK  # a FIFO must not block the runner
            else:
                child_flags = flags | os.O_DIRECTORY
            try:
                child = os.open(part, child_flags, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (40, 20):  # ELOOP (a symlink), ENOTDIR
                    raise ForbiddenPath(f"{'/'.join(parts)!r} goes through a symlink or a non-directory") from None
                raise
            os.close(fd)
            fd = child
        yield str(root), fd
    finally:
        os.close(fd)
