"""One supervised service process: spawn with its env, pump its output to a log file, stop it politely."""

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["ServiceProcess"]

Echo = Callable[[str, str], None]


def _die_with_parent() -> None:
    # Linux only: if the supervisor is SIGKILLed its children must not linger holding ports.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class ServiceProcess:
    """A ``python -m services.<service>`` child; ``name`` (e.g. ``scheduler-2``) identifies it in logs and APIs."""

    service: str
    index: int
    env: dict[str, str]
    log_path: Path
    health_url: str
    cwd: Path
    proc: asyncio.subprocess.Process | None = None
    starts: int = 0
    exits: int = 0
    _pump: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return f"{self.service}-{self.index}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def spawn(self, echo: Echo | None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", f"services.{self.service}",
            cwd=self.cwd, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # a terminal Ctrl-C reaches the supervisor only; it stops children in order
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.starts += 1
        self._pump = asyncio.create_task(self._pump_output(self.proc, echo), name=f"log-{self.name}")

    async def _pump_output(self, proc: asyncio.subprocess.Process, echo: Echo | None) -> None:
        assert proc.stdout is not None
        with self.log_path.open("ab", buffering=0) as log:
            while line := await proc.stdout.readline():
                log.write(line)
                if echo is not None:
                    echo(self.name, line.decode(errors="replace").rstrip())

    async def wait(self) -> int:
        """Wait for exit and for the remaining output to reach the log; return the exit code."""
        assert self.proc is not None
        code = await self.proc.wait()
        if self._pump is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._pump), timeout=5)
        return code

    def signal(self, sig: int) -> None:
        if self.running():
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def terminate(self, grace: float) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds."""
        if not self.running():
            return
        self.signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.shield(self.wait()), timeout=grace)
        except TimeoutError:
            self.signal(signal.SIGKILL)
            await self.wait()

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log output)"
        return "\n".join(text[-lines:]) or "(no log output)"


def child_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every child inherits: ours, unbuffered output, and the repo root importable."""
    env = dict(os.environ if base is None else base)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env
