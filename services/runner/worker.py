"""Inbound layer: the durable JetStream consumer of `runner.jobs.<hardware>` that runs predictions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from libs.bus.consumer import ReceivedMessage, Retry, run_consumer
from libs.bus.nats import Bus
from libs.events import Envelope
from libs.modelpkg import ModelPackageError, load_cog_config
from services.runner import events
from services.runner.adapters.supervisor import PredictionResult, WorkerSetupError, WorkerSupervisor

log = logging.getLogger(__name__)

CANCEL_SUBJECT = "runner.control.cancel"
_REMEMBERED_CANCELS = 1024

FetchPackage = Callable[[Any, str, Path], Awaitable[Path]]


class Predictor(Protocol):
    async def predict(self, prediction_id: str, input: dict[str, Any]) -> PredictionResult: ...
    async def cancel(self, prediction_id: str) -> bool: ...
    async def stop(self) -> None: ...


SupervisorFactory = Callable[[Path, str], Predictor | Awaitable[Predictor]]


@dataclass
class _Loaded:
    supervisor: Predictor


class RunnerWorker:
    """Runs each job on a worker process for its version, keeping the most recently used versions loaded."""

    def __init__(
        self,
        bus: Bus,
        *,
        runner_id: str,
        cache_dir: Path,
        fetch_package: FetchPackage,
        hardware: str = "cpu",
        max_loaded: int = 2,
        ack_wait: float = 60.0,
        supervisor_factory: SupervisorFactory = WorkerSupervisor,
    ) -> None:
        self.bus, self.runner_id, self.hardware = bus, runner_id, hardware
        self._cache_dir, self._fetch, self._factory = cache_dir, fetch_package, supervisor_factory
        self._max_loaded, self._ack_wait = max(1, max_loaded), ack_wait
        self._loaded: collections.OrderedDict[str, _Loaded] = collections.OrderedDict()
        self._current: tuple[str, Predictor | None] | None = None
        self._canceled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.ready = False
        self._stopping = False

    async def run(self, stop: asyncio.Event) -> None:
        subscription = await self.bus.nc.subscribe(CANCEL_SUBJECT, cb=self._on_cancel)
        self.ready = True
        # Stopping kills the model processes, so a long prediction cannot hold the shutdown hostage.
        watcher = asyncio.create_task(self._close_on(stop))
        try:
            await run_consumer(
                self.bus, stream="RUNNER_JOBS", durable=f"runner-{self.hardware}",
                subject=f"runner.jobs.{self.hardware}", handler=self.handle_job, stop=stop,
                mode="pull", batch=1, ack_wait=self._ack_wait,
            )
        finally:
            self.ready = False
            watcher.cancel()
            await subscription.unsubscribe()
            await self.close()

    async def _close_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stopping = True
        await self.close()

    async def close(self) -> None:
        while self._loaded:
            _, loaded = self._loaded.popitem()
            await loaded.supervisor.stop()

    async def handle_job(self, message: ReceivedMessage) -> None:
        job = message.json()
        prediction_id: str = job["prediction_id"]
        traceparent: str | None = job.get("traceparent")
        started_at = datetime.now(UTC)
        if prediction_id in self._canceled:
            await self._publish(events.completed(
                prediction_id, self.runner_id, _ended(started_at, "canceled", None), traceparent))
            return
        self._current = (prediction_id, None)
        # Announcing the start overlaps with running: the completion is published only after it is stored.
        announced = asyncio.create_task(
            self._publish(events.started(prediction_id, self.runner_id, started_at, traceparent))
        )
        heartbeat = asyncio.create_task(self._keep_alive(message))
        try:
            result = await self._run(job, started_at)
        finally:
            self._current = None
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await announced
        if self._stopping and result.status == "failed":
            raise Retry("runner stopped during the prediction; another runner takes the job", delay=0)
        await self._publish(events.completed(prediction_id, self.runner_id, result, traceparent))

    async def _run(self, job: dict[str, Any], started_at: datetime) -> PredictionResult:
        version_id: str = job["version_id"]
        try:
            model_dir = await self._fetch(self.bus.js, version_id, self._cache_dir)
            predictor_ref = job.get("predictor_ref") or load_cog_config(model_dir).predict
            supervisor = await self._supervisor(version_id, model_dir, predictor_ref)
        except ModelPackageError as exc:
            return _ended(started_at, "failed", f"cannot load version {version_id}: {exc}")
        prediction_id = job["prediction_id"]
        if prediction_id in self._canceled:
            return _ended(started_at, "canceled", None)
        self._current = (prediction_id, supervisor)
        try:
            return await supervisor.predict(prediction_id, job.get("input") or {})
        except WorkerSetupError as exc:
            await self._unload(version_id)
            return _ended(started_at, "failed", str(exc).split("\n--- setup logs ---")[0], exc.logs)

    async def _supervisor(self, version_id: str, model_dir: Path, predictor_ref: str) -> Predictor:
        loaded = self._loaded.get(version_id)
        if loaded is not None:
            self._loaded.move_to_end(version_id)
            return loaded.supervisor
        while len(self._loaded) >= self._max_loaded:
            evicted, old = self._loaded.popitem(last=False)
            log.info("unloading version %s", evicted)
            await old.supervisor.stop()
        supervisor = self._factory(model_dir, predictor_ref)
        if inspect.isawaitable(supervisor):  # a factory may first prepare the version's Python environment
            supervisor = await supervisor
        self._loaded[version_id] = _Loaded(supervisor)
        return supervisor

    async def _unload(self, version_id: str) -> None:
        loaded = self._loaded.pop(version_id, None)
        if loaded is not None:
            await loaded.supervisor.stop()

    async def _keep_alive(self, message: ReceivedMessage) -> None:
        while True:
            await asyncio.sleep(self._ack_wait / 3)
            with contextlib.suppress(Exception):
                await message.in_progress()

    async def _on_cancel(self, msg: Any) -> None:
        try:
            prediction_id = json.loads(msg.data)["prediction_id"]
        except (ValueError, KeyError, TypeError):
            return
        await self.cancel(prediction_id)

    async def cancel(self, prediction_id: str) -> None:
        """Stop a running prediction, or skip it when its job arrives later."""
        self._canceled[prediction_id] = None
        while len(self._canceled) > _REMEMBERED_CANCELS:
            self._canceled.popitem(last=False)
        current = self._current
        if current is not None and current[0] == prediction_id and current[1] is not None:
            await current[1].cancel(prediction_id)

    async def _publish(self, envelope: Envelope) -> None:
        kind = envelope.type.rsplit(".", 1)[-1]
        headers = {"traceparent": envelope.metadata.traceparent} if envelope.metadata.traceparent else None
        await self.bus.publish(events.subject(kind), envelope.to_json(), msg_id=envelope.id, headers=headers)


def _ended(started_at: datetime, status: str, error: str | None, logs: str = "") -> PredictionResult:
    return PredictionResult(
        status=status,  # type: ignore[arg-type]
        output=None,
        logs=logs,
        error=error,
        started_at=started_at,
        completed_at=datetime.now(UTC),
        predict_time=0.0,
    )
