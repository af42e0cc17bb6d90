"""Small helpers for launching a server binary with its output captured in a log file."""

import os
import subprocess
from pathlib import Path

__all__ = ["last_log_line", "pid_alive", "stop_process"]


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
