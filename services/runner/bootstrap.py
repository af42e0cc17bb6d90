"""Composition root of the runner: NATS connection and the job worker."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

from libs.bus.nats import Bus, connect
from libs.modelpkg import ensure_environment, fetch_package, load_cog_config
from libs.sandbox import Sandbox, SandboxSettings
from services.runner.adapters.supervisor import WorkerSupervisor
from services.runner.execution import ExecutionLimits
from services.runner.inputs import FileInputLimits
from services.runner.settings import RunnerSettings
from services.runner.worker import RunnerOptions, RunnerWorker


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deps:
    bus: Bus
    worker: RunnerWorker


def runner_options(settings: RunnerSettings) -> RunnerOptions:
    return RunnerOptions(
        hardware=settings.hardware,
        max_loaded=settings.max_loaded_versions,
        ack_wait=settings.ack_wait,
        predict_timeout=settings.predict_timeout,
        heartbeat_interval=settings.heartbeat_interval,
        inputs_dir=settings.inputs_dir,
        public_url=settings.public_url,
        limits=ExecutionLimits(
            log_head_bytes=settings.log_head_bytes,
            log_tail_bytes=settings.log_tail_bytes,
            stream_log_bytes=settings.stream_log_bytes,
            progress_interval=settings.progress_interval,
            progress_max_interval=settings.progress_max_interval,
        ),
        file_limits=FileInputLimits(max_bytes=settings.download_max_bytes, timeout=settings.download_timeout),
    )


async def bootstrap(settings: RunnerSettings, *, bus: Bus | None = None) -> Deps:
    bus = bus or await connect(settings.nats_url, name="runner")
    await bus.ensure_streams()
    runner_id = settings.instance_id or f"runner-{socket.gethostname()}-{os.getpid()}"
    sandbox = Sandbox(SandboxSettings())
    description = await asyncio.to_thread(sandbox.describe)
    if sandbox.enabled and sandbox.check() is None:
        log.info("%s", description)
    else:
        log.error("%s", description)
    # Scratch directories of workers a previous run of this runner left behind.
    await asyncio.to_thread(shutil.rmtree, settings.sandboxes_dir, True)

    async def start_supervisor(model_dir: Path, predictor_ref: str) -> WorkerSupervisor:
        config = load_cog_config(model_dir)
        python = await ensure_environment(model_dir, config, settings.environments_cache_dir)
        return WorkerSupervisor(
            model_dir, predictor_ref, env=config.environment, python=python, setup_timeout=settings.setup_timeout,
            cancel_grace=settings.cancel_grace, concurrency=config.concurrency_max,
            sandbox=sandbox, scratch_root=settings.sandboxes_dir,
        )

    worker = RunnerWorker(
        bus,
        runner_id=runner_id,
        cache_dir=settings.versions_cache_dir,
        fetch_package=fetch_package,
        supervisor_factory=start_supervisor,
        options=runner_options(settings),
    )
    return Deps(bus=bus, worker=worker)
