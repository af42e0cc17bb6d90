"""Composition root of the runner: NATS connection and the job worker."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from libs.bus.nats import Bus, connect
from libs.modelpkg import ensure_environment, fetch_package, load_cog_config
from services.runner.adapters.supervisor import WorkerSupervisor
from services.runner.settings import RunnerSettings
from services.runner.worker import RunnerWorker


@dataclass(frozen=True)
class Deps:
    bus: Bus
    worker: RunnerWorker


async def bootstrap(settings: RunnerSettings, *, bus: Bus | None = None) -> Deps:
    bus = bus or await connect(settings.nats_url, name="runner")
    await bus.ensure_streams()
    runner_id = settings.instance_id or f"runner-{socket.gethostname()}-{os.getpid()}"

    async def start_supervisor(model_dir: Path, predictor_ref: str) -> WorkerSupervisor:
        config = load_cog_config(model_dir)
        python = await ensure_environment(model_dir, config, settings.environments_cache_dir)
        return WorkerSupervisor(
            model_dir, predictor_ref, env=config.environment, python=python, setup_timeout=settings.setup_timeout
        )

    worker = RunnerWorker(
        bus,
        runner_id=runner_id,
        cache_dir=settings.versions_cache_dir,
        fetch_package=fetch_package,
        hardware=settings.hardware,
        max_loaded=settings.max_loaded_versions,
        ack_wait=settings.ack_wait,
        supervisor_factory=start_supervisor,
    )
    return Deps(bus=bus, worker=worker)
