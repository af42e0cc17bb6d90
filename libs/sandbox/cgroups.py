"""Memory, process-count and CPU limits for one sandbox, as a cgroup nested under the caller's own.

Both layouts are handled: cgroup v2 (one unified hierarchy, ``/sys/fs/cgroup/cgroup.controllers``) and v1
(one mount per controller: ``memory``, ``pids``, ``cpu``). The group is created below the cgroup the
calling process already lives in, so whatever limits the host puts on the runner still apply on top.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
_GROUP_PARENT = "cogwheel-sandbox"
_CPU_PERIOD_US = 100_000


@dataclass(frozen=True)
class Limits:
    memory_bytes: int = 0  # 0: no limit
    pids: int = 0
    cpus: float = 0.0


class CgroupError(RuntimeError):
    """The cgroup could not be created or configured."""


def _own_path(controller: str | None) -> str:
    """This process's cgroup path in ``controller``'s hierarchy (None: the v2 unified one)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller is None and controllers == "":
            return path
        if controller is not None and controller in controllers.split(","):
            return path
    return "/"


def _v2() -> bool:
    return (CGROUP_ROOT / "cgroup.controllers").is_file()


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _make_leaf(base: Path, leaf: str) -> Path:
    for _ in range(5):  # another group's removal may take the shared parent away in between
        base.mkdir(exist_ok=True)
        try:
            (base / leaf).mkdir()
            return base / leaf
        except FileNotFoundError:
            continue
    raise CgroupError(f"cannot create {base / leaf}")


def prune_stale(older_than: float = 300.0) -> int:
    """Delete empty sandbox groups left behind by processes that died without cleaning up.

    Only groups older than ``older_than`` seconds go: a fresh one may not have its process yet. A group
    in use cannot be removed (the kernel refuses), so this never disturbs a running sandbox.
    """
    removed = 0
    now = time.time()
    parents = []
    if _v2():
        parents.append(CGROUP_ROOT / _own_path(None).lstrip("/") / _GROUP_PARENT)
    else:
        for controller in ("memory", "pids", "cpu"):
            with contextlib.suppress(OSError):
                parents.append(CGROUP_ROOT / controller / _own_path(controller).lstrip("/") / _GROUP_PARENT)
    for parent in parents:
        with contextlib.suppress(OSError):
            for group in parent.iterdir():
                with contextlib.suppress(OSError):
                    if group.is_dir() and now - group.stat().st_mtime > older_than:
                        group.rmdir()
                        removed += 1
        with contextlib.suppress(OSError):
            parent.rmdir()
    return removed


class Cgroup:
    """One sandbox's cgroup: its directories (one per v1 controller, or one v2 directory)."""

    def __init__(self, dirs: dict[str, Path], *, v2: bool) -> None:
        self.dirs, self.v2 = dirs, v2

    @classmethod
    def create(cls, name: str, limits: Limits) -> Cgroup:
        """Create and configure the group; raises CgroupError when the host does not allow it."""
        leaf = f"{name}-{uuid.uuid4().hex[:8]}"
        dirs: dict[str, Path] = {}
        try:
            if _v2():
                base = CGROUP_ROOT / _own_path(None).lstrip("/") / _GROUP_PARENT
                path = _make_leaf(base, leaf)
                with contextlib.suppress(OSError):  # already enabled, or delegated by the host
                    _write(base.parent / "cgroup.subtree_control", "+memory +pids +cpu")
                    _write(base / "cgroup.subtree_control", "+memory +pids +cpu")
                dirs["unified"] = path
                group = cls(dirs, v2=True)
            else:
                wanted = ["memory", "pids"] + (["cpu"] if limits.cpus > 0 else [])
                for controller in wanted:
                    mount = CGROUP_ROOT / controller
                    if not (mount / "cgroup.procs").is_file():
                        raise CgroupError(f"cgroup v1 controller {controller!r} is not mounted at {mount}")
                    base = mount / _own_path(controller).lstrip("/") / _GROUP_PARENT
                    dirs[controller] = _make_leaf(base, leaf)
                group = cls(dirs, v2=False)
            group._configure(limits)
            return group
        except (OSError, CgroupError) as exc:
            for path in dirs.values():
                with contextlib.suppress(OSError):
                    path.rmdir()
                with contextlib.suppress(OSError):
                    path.parent.rmdir()
            if isinstance(exc, CgroupError):
                raise
            raise CgroupError(f"cannot set up a cgroup for the sandbox: {exc}") from None

    def _configure(self, limits: Limits) -> None:
        if self.v2:
            path = self.dirs["unified"]
            if limits.memory_bytes:
                _write(path / "memory.max", str(limits.memory_bytes))
                with contextlib.suppress(OSError):
                    _write(path / "memory.swap.max", "0")
            if limits.pids:
                _write(path / "pids.max", str(limits.pids))
            if limits.cpus > 0:
                _write(path / "cpu.max", f"{int(limits.cpus * _CPU_PERIOD_US)} {_CPU_PERIOD_US}")
            return
        if limits.memory_bytes:
            _write(self.dirs["memory"] / "memory.limit_in_bytes", str(limits.memory_bytes))
            with contextlib.suppress(OSError):  # swap accounting may be off; then there is nothing to escape to
                _write(self.dirs["memory"] / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        if limits.pids:
            _write(self.dirs["pids"] / "pids.max", str(limits.pids))
        if limits.cpus > 0:
            _write(self.dirs["cpu"] / "cpu.cfs_period_us", str(_CPU_PERIOD_US))
            _write(self.dirs["cpu"] / "cpu.cfs_quota_us", str(int(limits.cpus * _CPU_PERIOD_US)))

    @property
    def procs_files(self) -> list[Path]:
        """The files a process writes its pid to in order to join the group."""
        return [path / "cgroup.procs" for path in self.dirs.values()]

    def _membership_dir(self) -> Path:
        return self.dirs.get("unified") or self.dirs["pids"]

    def members(self) -> set[int]:
        """Pids of the processes in the group right now."""
        try:
            text = (self._membership_dir() / "cgroup.procs").read_text()
        except OSError:
            return set()
        return {int(line) for line in text.split()}

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the memory limit."""
        name = "memory.events" if self.v2 else "memory.oom_control"
        directory = self.dirs.get("unified") or self.dirs.get("memory")
        if directory is None:
            return 0
        with contextlib.suppress(OSError, ValueError):
            for line in (directory / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def kill(self, keep: set[int] = frozenset()) -> int:  # type: ignore[assignment]
        """SIGKILL every member not in ``keep`` until none is left; returns how many were killed.

        A pid is signalled through a pidfd opened while it is still listed in the group, so a pid the
        kernel reused for a process elsewhere is never hit.
        """
        killed: set[int] = set()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            # A fork bomb refills the group, and killed processes take a moment to leave it: repeat until
            # only ``keep`` is left.
            strays = self.members() - keep
            if not strays:
                break
            if killed:
                time.sleep(0.001)
            pidfds: dict[int, int] = {}
            for pid in strays:
                with contextlib.suppress(OSError):
                    pidfds[pid] = os.pidfd_open(pid)
            still_here = self.members()
            for pid, fd in pidfds.items():
                try:
                    if pid in still_here:
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
                        killed.add(pid)
                except OSError as exc:
                    if exc.errno != errno.ESRCH:
                        raise
                finally:
                    os.close(fd)
        return len(killed)

    def remove(self) -> None:
        """Kill what is left and delete the group (it must be empty to be removed)."""
        self.kill()
        for path in self.dirs.values():
            for _ in range(500):
                try:
                    path.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    # Killed processes leave the group once the kernel has finished tearing them down.
                    time.sleep(0.01)
            with contextlib.suppress(OSError):  # the shared parent goes with the last group, so no
                path.parent.rmdir()  # empty directory is left in the cgroup this service was started in
