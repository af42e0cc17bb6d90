"""Inbound layer: the durable JetStream pull consumer of `runner.jobs.<hardware>` that runs predictions."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import inspect
import json
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from libs.bus.consumer import DeliveryLimit, ReceivedMessage, handle_message
from libs.bus.nats import Bus, settle
from libs.bus.subjects import RUNNER_CANCEL, RUNNER_JOBS, runner_durable, runner_jobs
from libs.events import Envelope
from libs.modelpkg import CogConfig, ModelPackageError, load_cog_config
from libs.predictions import PredictionStatus
from libs.sealing import SEALED_INPUT, SealingError, open_sealed_json
from services.runner import events
from services.runner.adapters.supervisor import PredictionResult, WorkerSetupError, WorkerSupervisor
from services.runner.announce import START_REPORT_DELAY_SECONDS, StartAnnouncement
from services.runner.capacity import Capacity, Reservation
from services.runner.execution import Execution, ExecutionLimits
from services.runner.inputs import FileInputLimits, FileInputResolver, InputError
from services.runner.node import NodeHeartbeat
from services.runner.streaming import PredictionStream

log = logging.getLogger(__name__)

CANCEL_SUBJECT = RUNNER_CANCEL
TIMEOUT_VARIABLE = "COGWHEEL_PREDICT_TIMEOUT"
_REMEMBERED_CANCELS = 1024

FetchPackage = Callable[[Any, str, Path], Awaitable[Path]]


class Predictor(Protocol):
    slots: int
    setup_logs: str
    file_inputs: frozenset[str]

    @property
    def alive(self) -> bool: ...

    async def start(self) -> None: ...
    async def predict(self, prediction_id: str, input: dict[str, Any], on_event: Any = None) -> PredictionResult: ...
    async def cancel(self, prediction_id: str) -> bool: ...
    async def stop(self) -> None: ...


SupervisorFactory = Callable[[Path, str], Predictor | Awaitable[Predictor]]


@dataclass(frozen=True)
class RunnerOptions:
    hardware: str = "cpu"
    max_loaded: int = 2
    ack_wait: float = 10.0
    predict_timeout: float = 1800.0
    heartbeat_interval: float = 5.0
    inputs_dir: Path | None = None
    public_url: str = ""
    limits: ExecutionLimits = ExecutionLimits()
    file_limits: FileInputLimits = FileInputLimits()
    # Opens the job's sealed secret inputs; None: jobs with sealed inputs fail with a clear error.
    secrets_key: X25519PrivateKey | None = None
    # Runs of one job before it fails for good (a runner that dies mid-prediction hands its job on; a job that
    # can never be completed must not run forever).
    job_max_deliver: int = 5
    # Scheduled instances this node hosts at most, and the GPU memory it offers them (0: what it detects).
    instance_slots: int = 4
    gpu_memory_mib: int = 0
    # A prediction still running this long after it started reports its start (services.runner.announce).
    start_report_delay: float = START_REPORT_DELAY_SECONDS


class RunnerWorker:
    """Runs jobs on one worker process per version, keeping the most recently used versions loaded."""

    def __init__(
        self,
        bus: Bus,
        *,
        runner_id: str,
        cache_dir: Path,
        fetch_package: FetchPackage,
        supervisor_factory: SupervisorFactory = WorkerSupervisor,
        options: RunnerOptions | None = None,
        **overrides: Any,
    ) -> None:
        options = options or RunnerOptions()
        if overrides:
            options = RunnerOptions(**{**options.__dict__, **overrides})
        self.bus, self.runner_id, self.hardware = bus, runner_id, options.hardware
        self._options = options
        self._cache_dir, self._fetch, self._factory = cache_dir, fetch_package, supervisor_factory
        self._inputs_dir = options.inputs_dir or cache_dir.parent / "inputs"
        self._files = FileInputResolver(bus.js, options.file_limits, public_url=options.public_url)
        self._loaded: collections.OrderedDict[str, Predictor] = collections.OrderedDict()
        self._current: dict[str, Predictor | None] = {}
        self._canceled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._capacity = Capacity()
        # Workers of the instances the scheduler placed here, by instance id (see services.runner.instances).
        self.instance_supervisors: dict[str, Predictor] = {}
        self.host: Any = None
        self.ready = False
        self._stopping = False

    # --- consuming jobs ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        subscription = await self.bus.nc.subscribe(CANCEL_SUBJECT, cb=self._on_cancel)
        from services.runner.instances import InstanceHost

        self.host = InstanceHost(self)
        commands = await self.host.listen()
        await settle(self.bus.nc)  # cancels and commands sent once this runner shows up must find it listening
        heartbeat = NodeHeartbeat(self.bus.js, self.runner_id, self.hardware, self.describe,
                                  interval=self._options.heartbeat_interval)
        beating = asyncio.create_task(heartbeat.run(stop))
        self._heartbeat = heartbeat
        # Stopping kills the model processes, so a long prediction cannot hold the shutdown hostage.
        watcher = asyncio.create_task(self._close_on(stop))
        self.ready = True
        try:
            await self._pull_jobs(stop)
        finally:
            self.ready = False
            watcher.cancel()
            await subscription.unsubscribe()
            with contextlib.suppress(Exception):
                await commands.unsubscribe()
            await self.host.stop_all()
            await self.close()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(beating, 5)

    async def _pull_jobs(self, stop: asyncio.Event) -> None:
        durable = runner_durable(self.hardware)
        subject = runner_jobs(self.hardware)
        config = ConsumerConfig(
            durable_name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            ack_wait=self._options.ack_wait, max_ack_pending=256, filter_subject=subject,
            max_deliver=self._options.job_max_deliver,
        )
        # Create, or update a consumer an older installation made with another ack wait: the ack wait is how
        # long a dead runner's job waits before another runner takes it.
        config.name = durable
        await self.bus.js.add_consumer(RUNNER_JOBS.name, config=config)
        pull = await self.bus.js.pull_subscribe_bind(durable=durable, stream=RUNNER_JOBS.name)
        running: set[asyncio.Task[None]] = set()
        try:
            while not stop.is_set():
                reservation = await self._capacity.reserve(timeout=1.0)
                if reservation is None:
                    continue
                try:
                    messages = await pull.fetch(1, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    messages = []
                if not messages:
                    await self._capacity.drop(reservation)
                    continue
                for msg in messages:
                    handler = functools.partial(self.handle_job, reservation=reservation)
                    limits = DeliveryLimit(
                        self._options.job_max_deliver, functools.partial(self._give_up_job, reservation=reservation)
                    )
                    task = asyncio.create_task(handle_message(msg, handler, durable, limits))
                    running.add(task)
                    task.add_done_callback(running.discard)
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            with contextlib.suppress(Exception):
                await pull.unsubscribe()

    async def _give_up_job(
        self, message: ReceivedMessage, reason: BaseException, reservation: Reservation | None = None
    ) -> None:
        """The job's last allowed run failed outside the model (e.g. its report could not be published): the
        prediction fails with the reason instead of running again."""
        await self._capacity.drop(reservation)
        try:
            job = message.json()
            prediction_id = job["prediction_id"]
        except (ValueError, KeyError, TypeError):
            return
        detail = f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__
        error = f"The prediction could not be completed after {message.num_delivered} attempts ({detail})"
        result = _ended(datetime.now(UTC), PredictionStatus.FAILED, error)
        await self._publish(events.completed(prediction_id, self.runner_id, result, job.get("traceparent")))

    async def _close_on(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stopping = True
        await self.close()

    async def close(self) -> None:
        while self._loaded:
            _, supervisor = self._loaded.popitem()
            await supervisor.stop()
        for supervisor in list(self.instance_supervisors.values()):
            await supervisor.stop()

    # --- one job -------------------------------------------------------------------------------------

    async def handle_job(self, message: ReceivedMessage, reservation: Reservation | None = None) -> None:
        try:
            job = message.json()
            prediction_id: str = job["prediction_id"]
            version_id: str = job["version_id"]
        except (ValueError, KeyError, TypeError):
            await self._capacity.drop(reservation)
            log.error("dropping malformed job %r", message.data[:200])
            return
        async with self._capacity.slot(version_id, reservation):
            await self._handle(job, prediction_id, message)

    async def _handle(
        self, job: dict[str, Any], prediction_id: str, message: ReceivedMessage, instance_id: str | None = None,
        hosted: tuple[Predictor, CogConfig] | None = None, instance_ready_at: datetime | None = None,
    ) -> None:
        """Run one job; ``hosted``: the worker (and its cog.yaml) of the instance that took it."""
        traceparent: str | None = job.get("traceparent")
        started_at = datetime.now(UTC)
        if prediction_id in self._canceled:
            if job.get("stream"):
                await PredictionStream(self.bus, prediction_id, max_log_bytes=0).close(PredictionStatus.CANCELED, None)
            await self._publish(events.completed(
                prediction_id, self.runner_id, _ended(started_at, PredictionStatus.CANCELED, None), traceparent,
                instance_id=instance_id))
            return
        self._current[prediction_id] = None
        # Announcing the start overlaps with running, and only a prediction still running after a moment
        # announces it at all; the completion is published only after the start (if any) is stored.
        announced = StartAnnouncement(
            lambda: self._publish(events.started(prediction_id, self.runner_id, started_at, traceparent,
                                                 instance_id=instance_id, instance_ready_at=instance_ready_at)),
            delay=self._options.start_report_delay,
        )
        announced.schedule()
        finished = asyncio.Event()
        heartbeat = asyncio.create_task(self._keep_alive(message, finished))
        execution = Execution(self.bus, prediction_id, runner_id=self.runner_id, traceparent=traceparent,
                              limits=self._options.limits, stream=bool(job.get("stream")),
                              before_progress=announced.now)
        execution.start()
        try:
            outcome, error = await self._run(job, execution, started_at, hosted)
            result = await execution.finalize(outcome, error=error)
        finally:
            self._current.pop(prediction_id, None)
            finished.set()
            await heartbeat
            await announced.settle()
        if self._stopping and result.status == PredictionStatus.FAILED:
            # Its model was stopped with the node. A prediction whose predict() began is never run twice (the
            # scheduler fails a second run), so it ends here, saying why.
            result = replace(result, error=f"The node {self.runner_id} running this prediction was stopped "
                                           "(shut down) during the prediction; it is not run again")
        await execution.close_stream(result)
        await self._publish(events.completed(prediction_id, self.runner_id, result, traceparent,
                                             progress_reports=execution.progress.reports, instance_id=instance_id,
                                             instance_ready_at=instance_ready_at))

    async def _run(
        self, job: dict[str, Any], execution: Execution, started_at: datetime,
        hosted: tuple[Predictor, CogConfig] | None = None,
    ) -> tuple[PredictionResult, str | None]:
        """The prediction's result, and an error that overrides it (a timeout)."""
        version_id: str = job["version_id"]
        prediction_id: str = job["prediction_id"]
        try:
            if hosted is not None:
                supervisor, config = hosted
            else:
                model_dir = await self._fetch(self.bus.js, version_id, self._cache_dir)
                config = load_cog_config(model_dir)
                predictor_ref = job.get("predictor_ref") or config.predict
                supervisor = await self._supervisor(version_id, model_dir, predictor_ref)
        except ModelPackageError as exc:
            # The runner's cache directory is no business of the prediction's reader.
            reason = str(exc).replace(f"{self._cache_dir}/", "").replace(str(self._cache_dir), "")
            return _ended(started_at, PredictionStatus.FAILED, f"cannot load version {version_id}: {reason}"), None
        if prediction_id in self._canceled:
            return _ended(started_at, PredictionStatus.CANCELED, None), None
        self._current[prediction_id] = supervisor
        fresh = not supervisor.alive
        try:
            await supervisor.start()
        except WorkerSetupError as exc:
            if hosted is None:
                await self._unload(version_id)
            execution.add_logs(exc.logs)
            return _ended(started_at, PredictionStatus.FAILED, str(exc).split("\n--- setup logs ---")[0]), None
        if fresh:
            execution.add_logs(supervisor.setup_logs)
        await self._capacity.set_limit(version_id, supervisor.slots)
        # A sandboxed worker has its own directory for input files (visible inside) and reads outputs itself.
        prediction_dir = getattr(supervisor, "prediction_dir", None)
        workdir = (prediction_dir(prediction_id) if prediction_dir else None) or self._inputs_dir / prediction_id
        output_files = getattr(supervisor, "output_files", None)
        if output_files is not None:
            execution.read_outputs_with(output_files)
        try:
            try:
                clear_input = self._open_secrets(job)
            except SealingError as exc:
                return _ended(started_at, PredictionStatus.FAILED, f"cannot open the secret inputs: {exc}"), None
            try:
                values = await self._files.resolve(
                    clear_input, supervisor.file_inputs, account=job.get("account") or "", workdir=workdir
                )
            except InputError as exc:
                return _ended(started_at, PredictionStatus.FAILED, str(exc)), None
            if prediction_id in self._canceled:
                return _ended(started_at, PredictionStatus.CANCELED, None), None
            timeout = self._timeout_for(config)
            task = asyncio.create_task(supervisor.predict(prediction_id, values, on_event=execution.on_event))
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if task in done:
                return task.result(), None
            log.info("prediction %s timed out after %ss; stopping it", prediction_id, timeout)
            await supervisor.cancel(prediction_id)
            return await task, f"Prediction timed out after {describe_duration(timeout)}"
        finally:
            if workdir.exists():  # only predictions with file inputs have one
                await asyncio.to_thread(shutil.rmtree, workdir, True)

    def _open_secrets(self, job: dict[str, Any]) -> dict[str, Any]:
        """The job's input with its sealed secret values opened (they exist in clear only from here on)."""
        input: dict[str, Any] = dict(job.get("input") or {})
        sealed = job.get(SEALED_INPUT)
        if not sealed:
            return input
        if self._options.secrets_key is None:
            raise SealingError("this runner has no key (COGWHEEL_SECRETS_PRIVATE_KEY_FILE)")
        return input | open_sealed_json(sealed, self._options.secrets_key)

    def _timeout_for(self, config: CogConfig) -> float:
        value = config.environment.get(TIMEOUT_VARIABLE)
        if value:
            try:
                seconds = float(value)
                if seconds > 0:
                    return seconds
            except ValueError:
                log.warning("ignoring %s=%r: not a number of seconds", TIMEOUT_VARIABLE, value)
        return self._options.predict_timeout

    async def _supervisor(self, version_id: str, model_dir: Path, predictor_ref: str) -> Predictor:
        loaded = self._loaded.get(version_id)
        if loaded is not None:
            self._loaded.move_to_end(version_id)
            return loaded
        while len(self._loaded) >= max(1, self._options.max_loaded):
            evicted, old = self._loaded.popitem(last=False)
            log.info("unloading version %s", evicted)
            await old.stop()
        supervisor = self._factory(model_dir, predictor_ref)
        if inspect.isawaitable(supervisor):  # a factory may first prepare the version's Python environment
            supervisor = await supervisor
        self._loaded[version_id] = supervisor
        return supervisor

    async def _unload(self, version_id: str) -> None:
        supervisor = self._loaded.pop(version_id, None)
        if supervisor is not None:
            await supervisor.stop()

    async def _keep_alive(self, message: ReceivedMessage, finished: asyncio.Event) -> None:
        """Tell JetStream the job is still being worked on, until ``finished`` is set."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), self._options.ack_wait / 3)
            if finished.is_set():
                return
            with contextlib.suppress(Exception):
                await message.in_progress()

    # --- cancel and status -----------------------------------------------------------------------------

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
        supervisor = self._current.get(prediction_id)
        if supervisor is not None:
            await supervisor.cancel(prediction_id)

    def gpu_memory_mib(self) -> int:
        """GPU memory the node offers its instances: declared, else what its GPUs have."""
        if self._options.gpu_memory_mib:
            return self._options.gpu_memory_mib
        heartbeat = getattr(self, "_heartbeat", None)
        return sum(gpu.get("memory_total_mib", 0) for gpu in (heartbeat.gpus if heartbeat is not None else []))

    def describe(self) -> dict[str, Any]:
        """What the node runs, for its heartbeat."""
        workers = []
        hosted = [(i.version_id, self.instance_supervisors[i.id]) for i in (self.host.instances.values() if self.host
                  else []) if i.id in self.instance_supervisors]
        for version_id, supervisor in [*self._loaded.items(), *hosted]:
            stats = getattr(supervisor, "stats", None)
            workers.append({
                "version": version_id,
                "pid": getattr(supervisor, "pid", None),
                "slots": supervisor.slots,
                "busy": getattr(supervisor, "busy", 0),
                "restarts": getattr(supervisor, "restarts", 0),
                "gpu_device": getattr(stats, "gpu_device", None),
                "gpu_memory_allocated": getattr(stats, "gpu_memory_allocated", None),
                "gpu_memory_reserved": getattr(stats, "gpu_memory_reserved", None),
                "gpu_max_memory_allocated": getattr(stats, "gpu_max_memory_allocated", None),
            })
        return {
            "node_slots": self._options.instance_slots,
            "gpu_memory_mib": self.gpu_memory_mib(),
            "instances": self.host.describe() if self.host is not None else [],
            "slots": self._capacity.limit,
            "busy": self._capacity.active,
            "running_version": self._capacity.version,
            "predictions": len(self._current),
            "workers": workers,
        }

    async def _publish(self, envelope: Envelope) -> None:
        envelope = await events.fitting(self.bus.js, envelope)
        headers = {"traceparent": envelope.metadata.traceparent} if envelope.metadata.traceparent else None
        await self.bus.publish(events.subject_of(envelope), envelope.to_json(), msg_id=envelope.id, headers=headers)


def describe_duration(seconds: float) -> str:
    """``1800`` → ``30 minutes``, ``2`` → ``2 seconds``."""
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds:g} second{'s' if seconds != 1 else ''}"


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
