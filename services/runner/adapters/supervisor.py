"""Runs one model version in a worker process and turns protocol messages into prediction results."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from libs.sandbox import (
    CODE_DIR,
    INPUTS_DIR,
    MODEL_DIR,
    Launch,
    Sandbox,
    SandboxFiles,
    SandboxUnavailable,
    sandbox_python,
)
from services.runner.adapters import protocol as p

logger = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[3]
_STREAM_LIMIT = 64 * 1024 * 1024  # one JSON line may carry a large output
# How long a finished prediction waits for the stderr marker (the worker writes it right before Done).
_STDERR_SYNC_WAIT = 2.0
# The worker's own code, shown read-only inside the sandbox (and nothing else of this repository);
# `services` and `services.runner` are namespace packages there.
_WORKER_CODE = {f"{CODE_DIR}/services/runner/adapters": _REPO_ROOT / "services" / "runner" / "adapters"}
_default_sandbox: Sandbox | None = None


def default_sandbox() -> Sandbox:
    """The sandbox configured by this process's ``COGWHEEL_SANDBOX*`` variables."""
    global _default_sandbox
    if _default_sandbox is None:
        _default_sandbox = Sandbox()
    return _default_sandbox

# Called on the event loop with each p.Log / p.Output of the prediction, in the order the worker sent them.
EventCallback = Callable[[p.Message], None]


class WorkerSetupError(RuntimeError):
    """The predictor could not be imported or its setup() raised."""

    def __init__(self, message: str, logs: str) -> None:
        super().__init__(message if not logs else f"{message}\n--- setup logs ---\n{logs}")
        self.logs = logs


@dataclass(frozen=True)
class PredictionResult:
    status: p.PredictionStatus
    output: Any
    logs: str
    error: str | None
    started_at: datetime
    completed_at: datetime
    predict_time: float


@dataclass
class _Running:
    id: str
    started_at: datetime
    on_event: EventCallback | None = None
    logs: list[str] = field(default_factory=list)
    output: Any = None
    items: list[Any] | None = None
    cancel_requested: bool = False
    sent: bool = False
    # Done waits for the worker's marker on stderr, so fd-level output written before it is not lost.
    pending_done: p.Done | None = None
    stderr_synced: bool = False
    done: asyncio.Future[p.Done] = field(default_factory=lambda: asyncio.get_running_loop().create_future())

    def add_log(self, text: str) -> None:
        self.logs.append(text)
        if self.on_event is not None:
            self.on_event(p.Log(id=self.id, text=text))


def exit_description(code: int | None, *, sandboxed: bool = False, memory_limit: int = 0) -> str:
    """Why a worker ended, in words a user can act on."""
    if memory_limit:
        return f"worker ran out of memory (limit {memory_limit // (1024 * 1024)} MiB) and was killed"
    if sandboxed and code is not None and code > 128:
        code = 128 - code  # bubblewrap reports a child killed by signal N as exit code 128+N
    if code is not None and code < 0:
        number = -code
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        hint = ", possibly out of memory" if number == signal.SIGKILL else f", {name}"
        return f"worker exited unexpectedly (signal {number}{hint})"
    return f"worker exited unexpectedly (exit code {code})"


class WorkerSupervisor:
    """One worker process per model version, running up to ``slots`` predictions at once.

    ``slots`` is 1 for a sync predictor and cog.yaml's ``concurrency.max`` for an async one. A worker that
    crashes fails the predictions it was running and is started again in the background, so the next
    prediction finds it ready. A cancel the worker ignores for ``cancel_grace`` seconds gets it killed.
    """

    def __init__(
        self,
        model_dir: Path,
        predictor_ref: str,
        *,
        weights: str | None = None,
        env: dict[str, str] | None = None,
        python: str = sys.executable,
        setup_timeout: float = 600.0,
        cancel_grace: float = 5.0,
        concurrency: int = 1,
        on_event: EventCallback | None = None,
        sandbox: Sandbox | None = None,
        scratch_root: Path | None = None,
    ) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.predictor_ref = predictor_ref
        self._weights, self._env, self._python = weights, env or {}, python
        self._setup_timeout, self._cancel_grace = setup_timeout, cancel_grace
        self._concurrency = max(1, concurrency)
        self._default_on_event = on_event
        self._sandbox = sandbox or default_sandbox()
        self._scratch = Path(scratch_root or tempfile.gettempdir()) / f"worker-{uuid.uuid4().hex[:12]}"
        self._launch: Launch | None = None
        self._files: SandboxFiles | None = None
        # Processes of the sandbox that belong to the worker (it, and what its setup started).
        self._keep: set[int] = set()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._respawn: asyncio.Task[None] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._running: dict[str, _Running] = {}
        self._slots: asyncio.Semaphore | None = None
        self._start_lock = asyncio.Lock()
        self._stopped = False
        self.setup_logs = ""
        self.file_inputs: frozenset[str] = frozenset()
        self.slots = 1
        self.stats: p.Stats | None = None
        self.restarts = 0

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and self._reader is not None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    @property
    def busy(self) -> int:
        return len(self._running)

    async def start(self) -> None:
        """Spawn the worker and wait for setup(); raises WorkerSetupError with the setup logs."""
        async with self._start_lock:
            if not self.alive:
                self._stopped = False
                await self._spawn()

    @property
    def sandboxed(self) -> bool:
        return self._sandbox.enabled

    def prediction_dir(self, prediction_id: str) -> Path | None:
        """Where a prediction's input files go so the model can read them (None: anywhere)."""
        return self._scratch / "inputs" / prediction_id if self.sandboxed else None

    def _inside_paths(self, values: dict[str, Any]) -> dict[str, Any]:
        """File inputs the runner put under ``prediction_dir`` renamed to where the sandbox sees them."""
        if not self.sandboxed:
            return values
        host = str(self._scratch / "inputs")

        def inside(value: Any) -> Any:
            if isinstance(value, str) and value.startswith(host + "/"):
                return INPUTS_DIR + value[len(host):]
            if isinstance(value, list):
                return [inside(item) for item in value]
            return value

        return {name: inside(value) if name in self.file_inputs else value for name, value in values.items()}

    @property
    def output_files(self) -> SandboxFiles | None:
        """Reads the files the model returns, confined to its sandbox (None: read them as given)."""
        return self._files

    async def _command(self) -> tuple[list[str], dict[str, str]]:
        if not self.sandboxed:
            env = {**os.environ, **self._env}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
            env["PYTHONUNBUFFERED"] = "1"
            return [self._python, "-m", "services.runner.adapters.worker_main", str(self.model_dir),
                    self.predictor_ref], env
        try:
            await asyncio.to_thread(self._sandbox.require)
        except SandboxUnavailable as exc:
            raise WorkerSetupError(str(exc), "") from None
        env = dict(self._env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [CODE_DIR, env.get("PYTHONPATH")]))
        command = [sandbox_python(self._python), "-m", "services.runner.adapters.worker_main", MODEL_DIR,
                   self.predictor_ref]
        await self._close_launch()  # the cgroup of a worker that crashed
        try:
            self._launch = await asyncio.to_thread(
                self._sandbox.launch, name=self.model_dir.name[:16], command=command, model_dir=self.model_dir,
                scratch=self._scratch, env=env, python=self._python, code=_WORKER_CODE,
            )
        except SandboxUnavailable as exc:
            raise WorkerSetupError(f"cannot set up the model sandbox: {exc}", "") from None
        self._files = self._launch.files
        return self._launch.argv, self._launch.env

    async def _spawn(self) -> None:
        argv, env = await self._command()
        self._stderr_tail.clear()
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, limit=_STREAM_LIMIT,
        )
        self._proc = proc
        self._stderr_task = asyncio.create_task(self._drain_stderr(proc))
        await self._send(p.Setup(weights=self._weights, concurrency=self._concurrency))
        try:
            ready = await asyncio.wait_for(self._await_ready(proc), self._setup_timeout)
        except TimeoutError:
            await self._kill()
            raise WorkerSetupError(f"setup of {self.predictor_ref} did not finish in {self._setup_timeout:g}s",
                                   self.setup_logs) from None
        except BaseException:
            await self._kill()
            raise
        if self._launch is not None:
            self._keep = self._launch.members()
        self.file_inputs = frozenset(ready.file_inputs)
        self.slots = max(1, ready.slots)
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.slots)
        logger.info("worker for %s ready in %.3fs (%d slot(s))", self.model_dir.name, ready.setup_time, self.slots)
        self._reader = asyncio.create_task(self._read_loop(proc))

    async def _await_ready(self, proc: asyncio.subprocess.Process) -> p.Ready:
        assert proc.stdout is not None
        logs: list[str] = []
        while line := await proc.stdout.readline():
            message = p.decode(line)
            if isinstance(message, p.Log):
                logs.append(message.text)
                self.setup_logs = "".join(logs)
            elif isinstance(message, p.Ready):
                self.setup_logs = "".join(logs)
                return message
            elif isinstance(message, p.SetupFailed):
                raise WorkerSetupError(f"setup of {self.predictor_ref} failed: {message.error}", "".join(logs))
        code = await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
        raise WorkerSetupError(
            f"worker for {self.predictor_ref} exited during setup ({self._describe_exit(code)}): {self._tail()}",
            "".join(logs),
        )

    async def predict(
        self, prediction_id: str, input: dict[str, Any], on_event: EventCallback | None = None
    ) -> PredictionResult:
        """Run one prediction; failures of user code or of the worker come back as a failed result."""
        await self.start()
        assert self._slots is not None
        async with self._slots:
            running = _Running(id=prediction_id, started_at=datetime.now(UTC),
                               on_event=on_event or self._default_on_event)
            self._running[prediction_id] = running
            try:
                await self.start()
                await self._send(p.PredictRequest(id=prediction_id, input=self._inside_paths(input)))
                running.sent = True
                if running.cancel_requested:
                    await self._send_cancel(running)
                done = await running.done
            except (RuntimeError, ConnectionError):
                # The worker died between start() and the request: report it like a crash.
                done = p.Done(id=prediction_id, status="canceled" if running.cancel_requested else "failed",
                              error=None if running.cancel_requested else self._describe_exit(self._returncode()))
            finally:
                self._running.pop(prediction_id, None)
                if not self._running:
                    await self._reap_strays()
            output = running.items if running.items is not None else running.output
            return PredictionResult(
                status=done.status,
                output=output,
                logs="".join(running.logs),
                error=done.error,
                started_at=running.started_at,
                completed_at=datetime.now(UTC),
                predict_time=done.predict_time,
            )

    async def cancel(self, prediction_id: str) -> bool:
        """Stop ``prediction_id`` (also while the worker is still starting for it).

        A worker that ignores the request is killed after the grace period.
        """
        running = self._running.get(prediction_id)
        if running is None or running.done.done():
            return False
        running.cancel_requested = True
        if running.sent:
            await self._send_cancel(running)
        return True

    async def _send_cancel(self, running: _Running) -> None:
        with contextlib.suppress(RuntimeError, ConnectionError):
            await self._send(p.Cancel(id=running.id))
        asyncio.get_running_loop().call_later(self._cancel_grace, self._kill_if_stuck, running)

    def _kill_if_stuck(self, running: _Running) -> None:
        if not running.done.done() and self._proc is not None and self._proc.returncode is None:
            logger.warning("worker ignored the cancel of %s for %.1fs; killing it", running.id, self._cancel_grace)
            self._proc.kill()

    async def _reap_strays(self) -> None:
        """Kill what the model started during the predictions that just ended (a read and a few kills)."""
        launch = self._launch
        if launch is None or not self.alive:  # a worker still starting has no ``_keep`` of its own yet
            return
        if not launch.has_strays(self._keep):
            return  # the common case, checked on the loop: no thread hop after every prediction
        killed = await asyncio.to_thread(launch.kill_strays, self._keep)
        if killed:
            logger.info("killed %d process(es) %s left running after its prediction", killed, self.model_dir.name)

    def _describe_exit(self, code: int | None) -> str:
        launch = self._launch
        memory_limit = launch.memory_bytes if launch is not None and launch.out_of_memory() else 0
        return exit_description(code, sandboxed=launch is not None, memory_limit=memory_limit)

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit, killing it if it does not within ``timeout`` seconds."""
        self._stopped = True
        if self._respawn is not None:
            self._respawn.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._respawn
            self._respawn = None
        proc = self._proc
        if proc is None:
            await self._close_launch()
            await asyncio.to_thread(shutil.rmtree, self._scratch, True)
            return
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                proc.stdin.write(p.encode(p.Shutdown()))
                proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout)
        await self._kill()
        await asyncio.to_thread(shutil.rmtree, self._scratch, True)

    async def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
        if proc is not None:
            await proc.wait()
        for task in (self._reader, self._stderr_task):
            if task is not None and task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._reader = self._stderr_task = None
        await self._close_launch()

    async def _close_launch(self) -> None:
        launch, self._launch = self._launch, None
        if launch is not None:
            await asyncio.to_thread(launch.close)

    def _returncode(self) -> int | None:
        return self._proc.returncode if self._proc is not None else None

    async def _send(self, message: p.Message) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None or proc.returncode is not None:
            raise RuntimeError("worker is not running")
        proc.stdin.write(p.encode(message))
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()

    async def _read_loop(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            try:
                self._dispatch(p.decode(line))
            except p.ProtocolError as exc:
                logger.warning("%s", exc)
        code = await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
        crashed = [r for r in self._running.values() if not r.done.done()]
        for running in crashed:
            if running.cancel_requested:
                running.done.set_result(p.Done(id=running.id, status="canceled"))
            else:
                running.done.set_result(p.Done(id=running.id, status="failed", error=self._describe_exit(code)))
        logger.log(logging.INFO if code == 0 else logging.WARNING, "worker for %s exited with code %s",
                   self.model_dir.name, code)
        if self._proc is proc:
            self._reader = None
        if code != 0 and not self._stopped and self._proc is proc:
            # Replace the dead worker now, so the next prediction does not wait for its setup.
            self.restarts += 1
            self._respawn = asyncio.create_task(self._restart())

    async def _restart(self) -> None:
        try:
            await self.start()
        except WorkerSetupError as exc:
            logger.warning("restarting worker for %s failed: %s", self.model_dir.name, exc)

    def _dispatch(self, message: p.Message) -> None:
        if isinstance(message, p.Stats):
            self.stats = message
            return
        pid = getattr(message, "id", None)
        running = self._running.get(pid) if pid is not None else None
        if running is None:
            if isinstance(message, p.Log):
                logger.info("worker: %s", message.text.rstrip())
            return
        if isinstance(message, p.Log):
            running.add_log(message.text)
        elif isinstance(message, p.Output):
            if message.item:
                running.items = (running.items or []) + [message.value]
            else:
                running.output = message.value
            if running.on_event is not None:
                running.on_event(message)
        elif isinstance(message, p.Done) and not running.done.done():
            running.pending_done = message
            if running.stderr_synced:
                running.done.set_result(message)
            else:
                asyncio.get_running_loop().call_later(_STDERR_SYNC_WAIT, self._settle, running)

    @staticmethod
    def _settle(running: _Running) -> None:
        if running.pending_done is not None and not running.done.done():
            running.done.set_result(running.pending_done)

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        """Writes that bypassed sys.stdout/sys.stderr (C code, subprocesses): logs of the running prediction."""
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            if line.startswith(p.STDERR_MARKER):
                synced = self._running.get(line[len(p.STDERR_MARKER):].decode(errors="replace").strip())
                if synced is not None:
                    synced.stderr_synced = True
                    self._settle(synced)
                continue
            text = line.decode(errors="replace")
            self._stderr_tail.append(text.rstrip())
            active = [r for r in self._running.values() if r.sent and not r.done.done()]
            if len(active) == 1:
                active[0].add_log(text if text.endswith("\n") else text + "\n")
            else:
                logger.info("worker output: %s", text.rstrip())

    def _tail(self) -> str:
        return "\n".join(self._stderr_tail)
