"""One prediction on this runner: its logs, output files, stream and progress reports, then its result.

The worker's messages arrive through ``on_event`` (synchronously, in order) and are handled by one task, so
files are uploaded and stream events published in the order the model produced them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from libs.predictions import PredictionStatus
from services.runner import events
from services.runner.adapters import protocol as p
from services.runner.adapters.supervisor import PredictionResult
from services.runner.logbook import LogBook
from services.runner.outputs import OutputError, OutputUploader
from services.runner.progress import ProgressReporter
from services.runner.streaming import PredictionStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecutionLimits:
    log_head_bytes: int = 256 * 1024
    log_tail_bytes: int = 256 * 1024
    stream_log_bytes: int = 4 * 1024 * 1024
    progress_interval: float = 0.25
    progress_max_interval: float = 5.0


class Execution:
    def __init__(
        self,
        bus: Any,
        prediction_id: str,
        *,
        runner_id: str,
        traceparent: str | None,
        limits: ExecutionLimits,
        stream: bool,
        before_progress: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        # Awaited before each progress report: the prediction's start must be reported before its progress.
        self._before_progress = before_progress
        self._bus, self.prediction_id, self._runner_id, self._traceparent = bus, prediction_id, runner_id, traceparent
        self.logbook = LogBook(limits.log_head_bytes, limits.log_tail_bytes)
        self._uploader = OutputUploader(bus.js, prediction_id)
        self._stream = PredictionStream(bus, prediction_id, max_log_bytes=limits.stream_log_bytes) if stream else None
        self.progress = ProgressReporter(
            self._send_progress, interval=limits.progress_interval, max_interval=limits.progress_max_interval
        )
        self._queue: asyncio.Queue[p.Message | None] = asyncio.Queue()
        self._items: list[Any] = []
        self._output: Any = None
        self._has_items = False
        self._error: str | None = None
        self._pump: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None

    def read_outputs_with(self, files: Any) -> None:
        """Read returned files through ``files`` (a sandboxed model's view), not as paths of this host."""
        self._uploader.files = files

    def start(self) -> None:
        self._pump = asyncio.create_task(self._consume())
        self._reporter = asyncio.create_task(self.progress.run())

    def on_event(self, message: p.Message) -> None:
        self._queue.put_nowait(message)

    def add_logs(self, text: str) -> None:
        """Log text from the runner itself (setup logs of a worker started for this prediction)."""
        if text:
            self._queue.put_nowait(p.Log(id=self.prediction_id, text=text))

    async def _consume(self) -> None:
        while (message := await self._queue.get()) is not None:
            try:
                await self._handle(message)
            except OutputError as exc:
                self._error = self._error or str(exc)
            except Exception as exc:  # noqa: BLE001 - one bad output must not lose the rest of the prediction
                log.exception("handling output of %s failed", self.prediction_id)
                self._error = self._error or f"cannot store the output: {exc}"
            if self._queue.empty() and self._stream is not None:
                await self._stream.flush_logs()

    async def _handle(self, message: p.Message) -> None:
        if isinstance(message, p.Log):
            self.progress.add_logs(self.logbook.add(message.text))
            if self._stream is not None:
                await self._stream.logs(message.text)
        elif isinstance(message, p.Output):
            value = await self._uploader.replace_files(message.value)
            if message.item:
                self._has_items = True
                self._items.append(value)
                self.progress.add_items([value])
                if self._stream is not None:
                    await self._stream.output(value)
            else:
                self._output = value

    async def finalize(self, result: PredictionResult, *, error: str | None = None) -> PredictionResult:
        """The prediction's result once every message is handled; ``error`` (a timeout) overrides its status."""
        self._queue.put_nowait(None)
        if self._pump is not None:
            await self._pump
        if self._reporter is not None:
            self.progress.stop()
            self._reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporter
        await self._uploader.cleanup()
        status, failure = result.status, result.error
        if error is not None:
            status, failure = "failed", error
        elif status == PredictionStatus.SUCCEEDED and self._error is not None:
            status, failure = "failed", self._error
        output = self._items if self._has_items else self._output
        return replace(result, status=status, error=failure, output=output, logs=self.logbook.render())

    async def close_stream(self, result: PredictionResult) -> None:
        """The stream's last events (before the completion is reported, so readers never wait for them)."""
        if self._stream is None:
            return
        # (An iterator that yielded nothing has the output [] and no item to stream.)
        if result.status == PredictionStatus.SUCCEEDED and not self._has_items and self._output not in (None, []):
            # A non-iterator output still reaches a stream reader, as one item.
            await self._stream.output(self._output)
        await self._stream.close(result.status, result.error)

    async def _send_progress(self, seq: int, items: list[Any], logs: str) -> None:
        if self._before_progress is not None:
            await self._before_progress()
        envelope = events.progress(self.prediction_id, self._runner_id, seq, items, logs, self._traceparent)
        envelope = await events.fitting(self._bus.js, envelope)
        headers = {"traceparent": self._traceparent} if self._traceparent else None
        await self._bus.publish(events.subject("progress"), envelope.to_json(), msg_id=envelope.id, headers=headers)
