"""Instances the scheduler places on this node: load a version's worker, serve its queue, unload on command.

The scheduler sends `{"op": "load", instance_id, version_id, subject, durable, ...}` and
`{"op": "unload", instance_id, reason}` on `runner.node.<node>.command` (core NATS request-reply); both are
answered at once and are idempotent (the scheduler repeats a command that got no answer). What follows is
reported on `runner.events.instance.<kind>`: `booting` with each phase (fetching the package, building the
environment, running setup()), `ready` (slots, setup time, GPU memory), `stopped`, `failed`.

A ready instance pulls jobs from its queue's durable consumer (made by the scheduler), as many at once as its
worker has slots; a job is run exactly as the shared-label path runs it (`RunnerWorker._handle`), and its
reports name the instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from nats.errors import TimeoutError as NatsTimeoutError

from libs.bus.consumer import DeliveryLimit, ReceivedMessage, Retry, handle_message
from libs.bus.subjects import RUNNER_JOBS, runner_node_commands
from libs.modelpkg import ModelPackageError, load_cog_config
from libs.predictions import PredictionStatus
from services.runner import events
from services.runner.adapters.supervisor import WorkerSetupError
from services.runner.node import node_key

if TYPE_CHECKING:
    from services.runner.worker import RunnerWorker

log = logging.getLogger(__name__)

# A model declares the GPU memory it needs in cog.yaml's `environment`, for placement before it is measured.
GPU_MEMORY_VARIABLE = "COGWHEEL_GPU_MEMORY_MIB"
MIB = 1024 * 1024


@dataclass
class HostedInstance:
    id: str
    version_id: str
    queue: str
    subject: str
    durable: str
    predictor_ref: str = ""
    state: str = "booting"
    slots: int = 1
    busy: int = 0
    served: int = 0
    gpu_memory_mib: int = 0
    last_used: datetime = field(default_factory=lambda: datetime.now(UTC))
    config: Any = None
    ready_at: datetime | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


class InstanceHost:
    def __init__(self, worker: RunnerWorker) -> None:
        self.worker = worker
        self.instances: dict[str, HostedInstance] = {}

    async def listen(self) -> Any:
        return await self.worker.bus.nc.subscribe(runner_node_commands(node_key(self.worker.runner_id)),
                                                  cb=self._on_command)

    async def _on_command(self, msg: Any) -> None:
        try:
            command = json.loads(msg.data)
            op = command["op"]
            instance_id = str(command["instance_id"])
        except (ValueError, KeyError, TypeError):
            await _reply(msg, {"ok": False, "error": "malformed command"})
            return
        if op == "load":
            self.load(command)
        elif op == "unload":
            await self.unload(instance_id, str(command.get("reason") or ""))
        else:
            await _reply(msg, {"ok": False, "error": f"unknown op {op!r}"})
            return
        await _reply(msg, {"ok": True})

    def load(self, command: dict[str, Any]) -> None:
        instance_id = str(command["instance_id"])
        if instance_id in self.instances:
            return  # a repeated command
        instance = HostedInstance(
            id=instance_id, version_id=str(command["version_id"]), queue=str(command.get("queue") or ""),
            subject=str(command["subject"]), durable=str(command["durable"]),
            predictor_ref=str(command.get("predictor_ref") or ""),
            gpu_memory_mib=int(command.get("gpu_memory_mib") or 0),
        )
        self.instances[instance_id] = instance
        instance.task = asyncio.create_task(self._serve(instance))

    async def unload(self, instance_id: str, reason: str) -> None:
        instance = self.instances.get(instance_id)
        if instance is None:
            # Unknown here (this node restarted, or it ended already): say so, so the scheduler stops waiting.
            await self._report("stopped", instance_id, reason=f"not running on this node ({reason})")
            return
        log.info("unloading instance %s of %s: %s", instance_id, instance.version_id[:12], reason)
        instance.state = "stopping"
        instance.stop.set()

    async def stop_all(self) -> None:
        for instance in self.instances.values():
            instance.stop.set()
        tasks = [i.task for i in self.instances.values() if i.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=30)

    def _free_memory(self, instance: HostedInstance) -> int | None:
        """GPU memory the node has left besides its other instances; None when the node declares none."""
        total = self.worker.gpu_memory_mib()
        if not total:
            return None
        # An instance being unloaded (evicted to make room for this one) is as good as gone.
        return total - sum(other.gpu_memory_mib for other in self.instances.values()
                           if other.id != instance.id and other.state != "stopping")

    def describe(self) -> list[dict[str, Any]]:
        return [{"id": i.id, "version": i.version_id, "queue": i.queue, "state": i.state, "slots": i.slots,
                 "busy": i.busy, "served": i.served, "gpu_memory_mib": i.gpu_memory_mib,
                 "last_used": i.last_used.isoformat()} for i in self.instances.values()]

    async def _report(self, kind: str, instance_id: str, **fields: Any) -> None:
        envelope = events.instance_report(kind, instance_id, self.worker.runner_id, datetime.now(UTC), **fields)
        with contextlib.suppress(Exception):
            await self.worker.bus.publish(events.instance_subject(kind), envelope.to_json(), msg_id=envelope.id)

    # --- one instance -----------------------------------------------------------------------------------

    async def _serve(self, instance: HostedInstance) -> None:
        worker = self.worker
        supervisor = None
        try:
            await self._report("booting", instance.id, phase="fetching")
            model_dir = await worker._fetch(worker.bus.js, instance.version_id, worker._cache_dir)
            config = load_cog_config(model_dir)
            instance.config = config
            declared = _declared_memory(config.environment)
            instance.gpu_memory_mib = declared or instance.gpu_memory_mib
            await self._report("booting", instance.id, phase="environment", gpu_memory_mib=instance.gpu_memory_mib)
            room = self._free_memory(instance)
            if room is not None and instance.gpu_memory_mib > room:
                # Placed before its need was known: refuse, the scheduler now knows it and places it again.
                await self._report("failed", instance.id, gpu_memory_mib=instance.gpu_memory_mib,
                                   reason=f"needs {instance.gpu_memory_mib} MiB of GPU memory; this node has {room} "
                                          "MiB free")
                return
            made = worker._factory(model_dir, instance.predictor_ref or config.predict)
            supervisor = await made if inspect.isawaitable(made) else made
            if instance.stop.is_set():
                raise asyncio.CancelledError
            await self._report("booting", instance.id, phase="setup")
            began = time.monotonic()
            try:
                await supervisor.start()
            except WorkerSetupError as exc:
                await self._fail_one_job(instance, exc)
                await self._report("failed", instance.id, reason=str(exc).split("\n--- setup logs ---")[0])
                return
            setup_time = round(time.monotonic() - began, 3)
            measured = _measured_memory(supervisor)
            instance.gpu_memory_mib = max(instance.gpu_memory_mib, measured)
            instance.slots = max(1, int(supervisor.slots))
            worker.instance_supervisors[instance.id] = supervisor
            instance.state = "ready"
            instance.last_used = instance.ready_at = datetime.now(UTC)
            await self._report("ready", instance.id, slots=instance.slots, setup_time=setup_time,
                               gpu_memory_mib=instance.gpu_memory_mib)
            log.info("instance %s of %s ready (setup %.2f s)", instance.id, instance.version_id[:12], setup_time)
            await self._pull(instance)
            await self._report("stopped", instance.id, reason="unloaded")
        except asyncio.CancelledError:
            await self._report("stopped", instance.id, reason="unloaded while booting")
        except ModelPackageError as exc:
            # As for a prediction: the runner's cache directory is no business of whoever reads the reason.
            cache = str(worker._cache_dir)
            reason = str(exc).replace(f"{cache}/", "").replace(cache, "")
            await self._report("failed", instance.id, reason=f"cannot load version {instance.version_id}: {reason}")
        except Exception as exc:  # noqa: BLE001 - the scheduler must hear of any failure to place elsewhere
            log.exception("instance %s failed", instance.id)
            await self._report("failed", instance.id, reason=f"{type(exc).__name__}: {exc}")
        finally:
            worker.instance_supervisors.pop(instance.id, None)
            if supervisor is not None:
                with contextlib.suppress(Exception):
                    await supervisor.stop()
            self.instances.pop(instance.id, None)

    async def _pull(self, instance: HostedInstance) -> None:
        worker = self.worker
        pull = await worker.bus.js.pull_subscribe_bind(durable=instance.durable, stream=RUNNER_JOBS.name)
        free = asyncio.Semaphore(instance.slots)
        running: set[asyncio.Task[None]] = set()
        try:
            while not instance.stop.is_set() and not worker._stopping:
                await free.acquire()
                if instance.stop.is_set():
                    free.release()
                    break
                try:
                    messages = await pull.fetch(1, timeout=1.0)
                except (TimeoutError, NatsTimeoutError):
                    messages = []
                if not messages:
                    free.release()
                    continue
                for msg in messages:
                    limits = DeliveryLimit(worker._options.job_max_deliver, worker._give_up_job)
                    task = asyncio.create_task(handle_message(
                        msg, functools.partial(self._job, instance), instance.durable, limits))
                    running.add(task)
                    task.add_done_callback(running.discard)
                    task.add_done_callback(lambda _: free.release())
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            with contextlib.suppress(Exception):
                await pull.unsubscribe()

    async def _job(self, instance: HostedInstance, message: ReceivedMessage) -> None:
        try:
            job = message.json()
            prediction_id: str = job["prediction_id"]
            version_id: str = job["version_id"]
        except (ValueError, KeyError, TypeError):
            log.error("dropping malformed job %r", message.data[:200])
            return
        if version_id != instance.version_id:
            # A deployment's queue holds jobs of its earlier release too: the instance of that version takes them.
            raise Retry(f"job of version {version_id} on an instance of {instance.version_id}", delay=1.0)
        instance.busy += 1
        instance.last_used = datetime.now(UTC)
        try:
            supervisor = self.worker.instance_supervisors[instance.id]
            await self.worker._handle(job, prediction_id, message, instance_id=instance.id,
                                      hosted=(supervisor, instance.config), instance_ready_at=instance.ready_at)
            instance.served += 1
        finally:
            instance.busy -= 1
            instance.last_used = datetime.now(UTC)

    async def _fail_one_job(self, instance: HostedInstance, exc: WorkerSetupError) -> None:
        """setup() failed: the next prediction of the queue fails with its error and logs, as it would have had
        it started the worker itself; the scheduler may boot again for the others."""
        worker = self.worker
        pull = await worker.bus.js.pull_subscribe_bind(durable=instance.durable, stream=RUNNER_JOBS.name)
        try:
            try:
                messages = await pull.fetch(1, timeout=2.0)
            except (TimeoutError, NatsTimeoutError):
                return
            for msg in messages:
                try:
                    job = json.loads(msg.data)
                    prediction_id = job["prediction_id"]
                except (ValueError, KeyError, TypeError):
                    await msg.ack()
                    continue
                if job.get("version_id") != instance.version_id:
                    await msg.nak(delay=1.0)
                    continue
                now = datetime.now(UTC)
                from services.runner.worker import _ended

                result = _ended(now, PredictionStatus.FAILED, str(exc).split("\n--- setup logs ---")[0], logs=exc.logs)
                traceparent = job.get("traceparent")
                await worker._publish(events.started(prediction_id, worker.runner_id, now, traceparent,
                                                     instance_id=instance.id))
                await worker._publish(events.completed(prediction_id, worker.runner_id, result, traceparent,
                                                       instance_id=instance.id))
                await msg.ack()
        finally:
            with contextlib.suppress(Exception):
                await pull.unsubscribe()


def _declared_memory(environment: dict[str, str]) -> int:
    value = environment.get(GPU_MEMORY_VARIABLE)
    if not value:
        return 0
    try:
        return max(0, int(float(value)))
    except ValueError:
        log.warning("ignoring %s=%r: not a number of MiB", GPU_MEMORY_VARIABLE, value)
        return 0


def _measured_memory(supervisor: Any) -> int:
    """GPU memory the worker's model holds after setup (MiB), when the worker measures it."""
    stats = getattr(supervisor, "stats", None)
    reserved = getattr(stats, "gpu_memory_reserved", None) or getattr(stats, "gpu_max_memory_allocated", None)
    try:
        return int(reserved) // MIB if reserved else 0
    except (TypeError, ValueError):
        return 0


async def _reply(msg: Any, body: dict[str, Any]) -> None:
    if msg.reply:
        with contextlib.suppress(Exception):
            await msg.respond(json.dumps(body).encode())
