"""Small helpers for launching a server binary with its output captured in a log file."""

import functools
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["last_log_line", "pid_alive", "serialized", "stop_process"]

Method = TypeVar("Method", bound=Callable[..., Any])


def serialized(method: Method) -> Method:
    """One at a time per server (its ``_lifecycle`` re-entrant lock): a supervisor restarts a server in a worker
    thread while a shutdown may stop the same server from another, and neither may act on a half-done other."""

    @functools.wraps(method)
    def locked(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lifecycle:
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


def last_log_line(log_path: Path) -> str:
    """The last non-empty line of a log file, or a placeholder when there is none."""
    try:
        lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "(no log output)"
    return lines[-1] if lines else "(no log output)"


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL; safe to call on an exited process."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists (zombies included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
