"""Overhead of the runner's worker process on real models: text-embeddings and image-generator.

For each example and device, the same predictions run (a) through `WorkerSupervisor`, the runner's model
worker (a subprocess speaking the runner protocol: input in, JSON output back over a pipe), and (b) as plain
`predict()` calls in a loop in a fresh interpreter on the same device. The overhead is (a) against (b).
CPU rows always run; CUDA rows only where CUDA is available. `python -m benchmarks.gpu_examples [N]`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.stats import percentile
from libs.modelpkg import load_cog_config
from services.runner.adapters.supervisor import WorkerSupervisor

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
WARMUP = 3

SENTENCES = [f"Sentence number {i} about {topic}." for i, topic in
             enumerate(["cats", "markets", "rain", "engines", "poetry", "rivers", "bread", "chess"] * 4)]
# Per example: the input of every prediction, complete (cog's Input() defaults are filled in by a runner, not
# by a direct call). Seeds vary, so no cache can help either side.
CASES: dict[str, Any] = {
    "text-embeddings": lambda i: {"texts": SENTENCES, "normalize": True},
    "image-generator": lambda i: {"seed": i, "width": 512, "height": 512},
}


def _device_env(device: str) -> dict[str, str]:
    return {"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {}


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def direct_samples(example: str, count: int) -> list[float]:
    """Milliseconds per `predict()` call in this process (run in a child, see `_direct`)."""
    directory = EXAMPLES / example
    os.chdir(directory)
    sys.path.insert(0, str(directory))
    spec = importlib.util.spec_from_file_location("predict", directory / "predict.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    predictor = module.Predictor()
    predictor.setup()
    samples = []
    for i in range(WARMUP + count):
        began = time.perf_counter()
        predictor.predict(**CASES[example](i))
        samples.append((time.perf_counter() - began) * 1000)
    return samples[WARMUP:]


def _direct(example: str, device: str, count: int) -> list[float]:
    env = {**os.environ, **_device_env(device), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_examples", "--direct", example, str(count)],
        env=env, capture_output=True, text=True, check=True, timeout=1800,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _through_worker(example: str, device: str, count: int) -> list[float]:
    directory = EXAMPLES / example
    config = load_cog_config(directory)
    supervisor = WorkerSupervisor(directory, config.predict, env={**config.environment, **_device_env(device)})
    try:
        await supervisor.start()
        samples = []
        for i in range(WARMUP + count):
            began = time.perf_counter()
            result = await supervisor.predict(f"bench-{example}-{i}", CASES[example](i))
            samples.append((time.perf_counter() - began) * 1000)
            assert result.status == "succeeded", result.error
        return samples[WARMUP:]
    finally:
        await supervisor.stop()


async def run(count: int = 30) -> None:
    devices = ["cpu"] + (["cuda"] if _cuda_available() else [])
    print(f"\nexample models: runner worker vs direct predict(), {count} predictions after {WARMUP} warm-up each")
    print(f"{'example':<16} {'device':<6} {'direct p50':>11} {'worker p50':>11} {'direct mean':>12}"
          f" {'worker mean':>12} {'overhead p50':>13} {'overhead mean':>14}")
    for example in CASES:
        for device in devices:
            direct: list[float] = []
            worker: list[float] = []
            # Alternating halves, so that load drifting on a shared machine hits both sides alike.
            for half in (count // 2, count - count // 2):
                direct += await asyncio.to_thread(_direct, example, device, half)
                worker += await _through_worker(example, device, half)
            d50, w50 = percentile(direct, 0.5), percentile(worker, 0.5)
            dmean, wmean = statistics.fmean(direct), statistics.fmean(worker)
            print(f"{example:<16} {device:<6} {d50:>9.2f}ms {w50:>9.2f}ms {dmean:>10.2f}ms {wmean:>10.2f}ms"
                  f" {100 * (w50 - d50) / d50:>12.1f}% {100 * (wmean - dmean) / dmean:>13.1f}%", flush=True)
    if "cuda" not in devices:
        print("(no CUDA here: GPU rows skipped)")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--direct"]:
        print(json.dumps(direct_samples(argv[1], int(argv[2]))))
        return
    asyncio.run(run(int(argv[0]) if argv else 30))


if __name__ == "__main__":
    main(sys.argv[1:])
