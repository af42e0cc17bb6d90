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
from libs.netguard import parse_networks
from libs.sandbox import Sandbox, SandboxSettings
from libs.sealing import load_private_key
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
        instance_slots=settings.instance_slots,
        gpu_memory_mib=settings.node_gpu_memory_mib,
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
        job_max_deliver=settings.job_max_deliver,
        file_limits=FileInputLimits(
            max_bytes=settings.download_max_bytes, timeout=settings.download_timeout,
            allowed_networks=parse_networks(settings.download_allowed_networks),
        ),
        secrets_key=load_private_key(Path(settings.secrets_private_key_file))
        if settings.secrets_private_key_file else None,
    )


# Model processes inherit the runner's environment: credentials must be gone from it once read.
CREDENTIAL_VARIABLES = (
    "COGWHEEL_NATS_PASSWORD", "COGWHEEL_NATS_USER", "COGWHEEL_RPC_TOKEN", "COGWHEEL_SECRETS_PRIVATE_KEY_FILE",
    "COGWHEEL_DATABASE_URL",
)


def forget_credentials() -> None:
    for name in CREDENTIAL_VARIABLES:
        os.environ.pop(name, None)


async def bootstrap(settings: RunnerSettings, *, bus: Bus | None = None) -> Deps:
    options = runner_options(settings)
    bus = bus or await connect(settings.nats_url, name="runner", user=settings.nats_user,
                               password=settings.nats_password)
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
        options=options,
    )
    return Deps(bus=bus, worker=worker)
