"""Runs one model version in a worker process and turns protocol messages into prediction results."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.runner.adapters import protocol as p

logger = logging.getLogger(__name__)

_REPO_ROOT = Path(__file__).resolve().parents[3]
_STREAM_LIMIT = 64 * 1024 * 1024  # one JSON line may carry a large output

LogCallback = Callable[[str, str], None]
OutputCallback = Callable[[str, Any], None]


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
    logs: list[str] = field(default_factory=list)
    output: Any = None
    items: list[Any] | None = None
    cancel_requested: bool = False
    sent: bool = False
    done: asyncio.Future[p.Done] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class WorkerSupervisor:
    """One worker process per model version; predictions run one at a time.

    A crashed worker fails the prediction it was running and is started again on the next call.
    ``on_log(prediction_id, text)`` and ``on_output(prediction_id, value)`` are called on the event loop.
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
        on_log: LogCallback | None = None,
        on_output: OutputCallback | None = None,
    ) -> None:
        self.model_dir = Path(model_dir).resolve()
        self.predictor_ref = predictor_ref
        self._weights, self._env, self._python = weights, env or {}, python
        self._setup_timeout, self._cancel_grace = setup_timeout, cancel_grace
        self.on_log, self.on_output = on_log, on_output
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=40)
        self._running: _Running | None = None
        self._lock = asyncio.Lock()
        self._start_lock = asyncio.Lock()
        self.setup_logs = ""

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.returncode is None and self._reader is not None

    async def start(self) -> None:
        """Spawn the worker and wait for setup(); raises WorkerSetupError with the setup logs."""
        async with self._start_lock:
            if not self.alive:
                await self._spawn()

    async def _spawn(self) -> None:
        env = {**os.environ, **self._env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
        env["PYTHONUNBUFFERED"] = "1"
        self._stderr_tail.clear()
        proc = await asyncio.create_subprocess_exec(
            self._python, "-m", "services.runner.adapters.worker_main", str(self.model_dir), self.predictor_ref,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, limit=_STREAM_LIMIT,
        )
        self._proc = proc
        self._stderr_task = asyncio.create_task(self._drain_stderr(proc))
        await self._send(p.Setup(weights=self._weights))
        try:
            ready = await asyncio.wait_for(self._await_ready(proc), self._setup_timeout)
        except BaseException:
            await self._kill()
            raise
        logger.info("worker for %s ready in %.3fs", self.model_dir.name, ready.setup_time)
        self._reader = asyncio.create_task(self._read_loop(proc))

    async def _await_ready(self, proc: asyncio.subprocess.Process) -> p.Ready:
        assert proc.stdout is not None
        logs: list[str] = []
        while line := await proc.stdout.readline():
            message = p.decode(line)
            if isinstance(message, p.Log):
                logs.append(message.text)
            elif isinstance(message, p.Ready):
                self.setup_logs = "".join(logs)
                return message
            elif isinstance(message, p.SetupFailed):
                raise WorkerSetupError(f"setup of {self.predictor_ref} failed: {message.error}", "".join(logs))
        await proc.wait()
        raise WorkerSetupError(
            f"worker for {self.predictor_ref} exited during setup with code {proc.returncode}: {self._tail()}",
            "".join(logs),
        )

    async def predict(self, prediction_id: str, input: dict[str, Any]) -> PredictionResult:
        """Run one prediction; failures of user code or of the worker come back as a failed result."""
        async with self._lock:
            running = _Running(id=prediction_id, started_at=datetime.now(UTC))
            self._running = running
            try:
                await self.start()
                if running.cancel_requested:
                    running.done.set_result(p.Done(id=prediction_id, status="canceled"))
                else:
                    await self._send(p.PredictRequest(id=prediction_id, input=input))
                    running.sent = True
                    if running.cancel_requested:
                        await self._send_cancel(running)
                done = await running.done
            finally:
                self._running = None
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
        running = self._running
        if running is None or running.id != prediction_id or running.done.done():
            return False
        running.cancel_requested = True
        if running.sent:
            await self._send_cancel(running)
        return True

    async def _send_cancel(self, running: _Running) -> None:
        with contextlib.suppress(RuntimeError):
            await self._send(p.Cancel(id=running.id))
        asyncio.get_running_loop().call_later(self._cancel_grace, self._kill_if_stuck, running)

    def _kill_if_stuck(self, running: _Running) -> None:
        if not running.done.done() and self._proc is not None and self._proc.returncode is None:
            logger.warning("worker ignored cancel of %s; killing it", running.id)
            self._proc.kill()

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit, killing it if it does not within ``timeout`` seconds."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            with contextlib.suppress(ConnectionError):
                proc.stdin.write(p.encode(p.Shutdown()))
                proc.stdin.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), timeout)
        await self._kill()

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

    async def _send(self, message: p.Message) -> None:
        proc = self._proc
        if proc is None or proc.stdin is None:
            raise RuntimeError("worker is not running")
        proc.stdin.write(p.encode(message))
        with contextlib.suppress(ConnectionError):
            await proc.stdin.drain()

    async def _read_loop(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            self._dispatch(p.decode(line))
        code = await proc.wait()
        if self._stderr_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._stderr_task
        running = self._running
        if running is not None and not running.done.done():
            if running.cancel_requested:
                running.done.set_result(p.Done(id=running.id, status="canceled"))
            else:
                error = f"worker process crashed (exit code {code}) during prediction: {self._tail()}"
                running.done.set_result(p.Done(id=running.id, status="failed", error=error))
        logger.log(logging.INFO if code == 0 else logging.WARNING, "worker for %s exited with code %s",
                   self.model_dir.name, code)
        self._reader = None

    def _dispatch(self, message: p.Message) -> None:
        running = self._running
        if running is None or getattr(message, "id", None) != running.id:
            if isinstance(message, p.Log):
                logger.info("worker: %s", message.text.rstrip())
            return
        if isinstance(message, p.Log):
            running.logs.append(message.text)
            if self.on_log is not None:
                self.on_log(running.id, message.text)
        elif isinstance(message, p.Output):
            if message.item:
                running.items = (running.items or []) + [message.value]
            else:
                running.output = message.value
            if self.on_output is not None:
                self.on_output(running.id, message.value)
        elif isinstance(message, p.Done) and not running.done.done():
            running.done.set_result(message)

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self._stderr_tail.append(text)
            logger.debug("worker stderr: %s", text)

    def _tail(self) -> str:
        return "\n".join(self._stderr_tail) or "(no output on stderr)"
