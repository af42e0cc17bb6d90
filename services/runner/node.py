"""The runner node's heartbeat: what it runs and what it has, in the `cogwheel-runners` key-value bucket.

Each node puts ``{runner_id, hardware, gpus, slots, busy, workers: [...], updated_at}`` under its runner id
every ``interval`` seconds; entries expire after three missed beats, so the bucket lists live nodes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, NotFoundError

from libs.bus.subjects import RUNNERS_BUCKET

log = logging.getLogger(__name__)

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_=-]")


def node_key(runner_id: str) -> str:
    return _KEY_UNSAFE.sub("_", runner_id)


def detect_gpus() -> list[dict[str, Any]]:
    """The node's NVIDIA GPUs (name, total and used memory in MiB) from nvidia-smi; none without it."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return []
    try:
        out = subprocess.run(
            [binary, "--query-gpu=index,name,memory.total,memory.used", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) == 4 and parts[2].isdigit() and parts[3].isdigit():
            gpus.append({"index": int(parts[0]), "name": parts[1], "memory_total_mib": int(parts[2]),
                         "memory_used_mib": int(parts[3])})
    return gpus


class NodeHeartbeat:
    def __init__(
        self, js: Any, runner_id: str, hardware: str, describe: Callable[[], dict[str, Any]], *, interval: float
    ) -> None:
        self._js, self.runner_id, self.hardware = js, runner_id, hardware
        self._describe, self._interval = describe, interval
        self._key = node_key(runner_id)
        self.gpus: list[dict[str, Any]] = []

    async def _bucket(self) -> Any:
        try:
            return await self._js.key_value(RUNNERS_BUCKET)
        except (BucketNotFoundError, NotFoundError):
            return await self._js.create_key_value(KeyValueConfig(bucket=RUNNERS_BUCKET, ttl=self._interval * 3))

    def snapshot(self) -> dict[str, Any]:
        described = self._describe()
        if not described.get("gpu_memory_mib") and self.gpus:
            # Not declared (COGWHEEL_NODE_GPU_MEMORY_MIB): all the memory of the GPUs the node sees.
            described["gpu_memory_mib"] = sum(gpu["memory_total_mib"] for gpu in self.gpus)
        return {
            "runner_id": self.runner_id,
            "key": self._key,
            "hardware": self.hardware,
            "gpus": self.gpus,
            **described,
            "updated_at": datetime.now(UTC).isoformat(),
        }

    async def run(self, stop: asyncio.Event) -> None:
        self.gpus = await asyncio.to_thread(detect_gpus)
        bucket = None
        while not stop.is_set():
            try:
                bucket = bucket or await self._bucket()
                if self.gpus:
                    self.gpus = await asyncio.to_thread(detect_gpus) or self.gpus
                await bucket.put(self._key, json.dumps(self.snapshot()).encode())
            except Exception:  # noqa: BLE001 - a missed beat only makes the node look gone for a while
                log.warning("runner heartbeat failed", exc_info=True)
                bucket = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
        if bucket is not None:
            with contextlib.suppress(Exception):
                await bucket.delete(self._key)
