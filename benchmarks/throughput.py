"""Sustained async throughput through the public API, and what each prediction costs every process in CPU.

A fresh embedded stack (one process of each service). Concurrent clients each create a hello-world prediction
without `Prefer: wait` and poll it until it ends, then create the next, until N predictions are done. They
share the machine's cores with the platform, so they use a lean HTTP client (`benchmarks.loadgen`) and their
own CPU is printed apart. Printed:
the end-to-end rate, p50/p99 of the create request and of completion (create to terminal, as a client polling
sees it), CPU milliseconds per prediction for every process (from `/proc`, the process and all its
descendants: a runner's model workers count for the runner, PostgreSQL's backends for PostgreSQL), and the
lag of each durable consumer right after the burst and once it has settled: work that is not keeping up
shows there, not in the rate.

`COGWHEEL_BENCH_PROFILE=<dir>` also samples every service process with py-spy during the burst and writes
collapsed stacks (`<dir>/<process>.txt`, one line per stack with its sample count) for flame graphs or grep.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import nats

from benchmarks.loadgen import LeanClient
from benchmarks.stats import percentile
from cogwheel.seed import seed
from cogwheel.stack import Stack
from libs.infra import EmbeddedNats, EmbeddedPostgres, free_port

TICKS = os.sysconf("SC_CLK_TCK")
TERMINAL = {"succeeded", "failed", "canceled"}
WARMUP = 50
# How often a client polls a prediction it waits for (the official Python client polls every 0.5 s).
POLL_SECONDS = 0.1


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry.name}/stat").read_text()
        except OSError:
            continue
        parent = int(stat[stat.rindex(")") + 2:].split()[1])
        tree.setdefault(parent, []).append(int(entry.name))
    return tree


def _own_and_reaped_ticks(pid: int) -> int:
    """utime + stime of `pid`, plus cutime + cstime: children it has already waited for."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat[stat.rindex(")") + 2:].split()
    return sum(int(value) for value in fields[11:15])


def cpu_seconds(root: int, tree: dict[int, list[int]]) -> float:
    """CPU of `root` and every live descendant (each counting the children it has reaped)."""
    total, pending = 0, [root]
    while pending:
        pid = pending.pop()
        total += _own_and_reaped_ticks(pid)
        pending.extend(tree.get(pid, ()))
    return total / TICKS


@dataclass
class Burst:
    created_ms: list[float] = field(default_factory=list)
    completed_ms: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    poll_errors: int = 0
    polls: int = 0


async def _client(http: LeanClient, body: dict, remaining: list[int], burst: Burst) -> None:
    while remaining[0] > 0:
        remaining[0] -= 1
        began = time.perf_counter()
        created = await http.post("/v1/predictions", body)
        if created.status_code != 201:
            raise RuntimeError(f"create answered {created.status_code}: {created.text}")
        burst.created_ms.append((time.perf_counter() - began) * 1000)
        url = f"/v1/predictions/{created.json()['id']}"
        status = created.json()["status"]
        while status not in TERMINAL:
            await asyncio.sleep(POLL_SECONDS)
            burst.polls += 1
            try:
                status = (await http.get(url)).json()["status"]
            except (OSError, ConnectionError):
                burst.poll_errors += 1  # a GET is safe to repeat, as any client would
        burst.completed_ms.append((time.perf_counter() - began) * 1000)
        burst.statuses[status] = burst.statuses.get(status, 0) + 1


async def consumer_lag(nats_url: str, credentials: dict[str, str] | None = None) -> dict[str, int]:
    """Messages each durable consumer has not yet handled (pending + delivered but not acknowledged)."""
    nc = await nats.connect(nats_url, **(credentials or {}))
    try:
        js = nc.jetstream()
        lag: dict[str, int] = {}
        for stream in await js.streams_info():
            for consumer in await js.consumers_info(stream.config.name):
                if consumer.config.durable_name:
                    lag[f"{stream.config.name}/{consumer.name}"] = consumer.num_pending + consumer.num_ack_pending
        return lag
    finally:
        await nc.close()


async def run(predictions: int = 2000, clients: int = 32) -> None:
    work = Path(tempfile.mkdtemp(prefix="cogwheel-throughput-"))
    nats_server = EmbeddedNats(work / "nats")
    postgres = EmbeddedPostgres(work / "postgres")
    nats_url = await nats_server.astart()
    database_url = await asyncio.to_thread(postgres.start)
    # One token makes every prediction: Replicate's per-token create limit (600 a minute) would be the figure.
    unthrottled = {f"COGWHEEL_RATE_LIMIT_{kind}_{unit}": "1000000" for kind in ("PREDICTIONS", "REQUESTS")
                   for unit in ("PER_MINUTE", "BURST")}
    stack = Stack(nats_url, database_url, work, gateway_port=free_port(), notify=lambda _line: None,
                  process_env={"gateway-1": unthrottled})
    try:
        await stack.start(timeout=120)
        seeded = await seed(stack.registry_addr, nats_url)
        headers = {"Authorization": f"Bearer {seeded.token}"}
        body = {"version": seeded.version_id, "input": {"text": "world"}}
        # One connection per client, as `clients` processes of a real load would have (see benchmarks.loadgen).
        connections = [LeanClient(stack.base_url, headers) for _ in range(clients)]
        try:
            # Warm-up: the instance boots, caches fill; not measured.
            await asyncio.gather(*(_client(http, body, [WARMUP // clients + 1], Burst()) for http in connections))
            await _settle(nats_url)
            roots = {name: pid for name, pid in stack.pids().items() if pid}
            roots["nats"] = nats_server.pid or 0
            roots["postgres"] = postgres.pid or 0
            tree = _children()
            before = {name: cpu_seconds(pid, tree) for name, pid in roots.items()}
            burst, remaining = Burst(), [predictions]
            profilers = await _start_profilers(stack.pids())
            began, client_began = time.perf_counter(), time.process_time()
            await asyncio.gather(*(_client(http, body, remaining, burst) for http in connections))
            elapsed, client_cpu = time.perf_counter() - began, time.process_time() - client_began
            await _stop_profilers(profilers)
            tree = _children()
            after = {name: cpu_seconds(pid, tree) for name, pid in roots.items()}
            lag_at_end = await consumer_lag(nats_url)
            settled_in = await _settle(nats_url)
            after_settled = {name: cpu_seconds(pid, _children()) for name, pid in roots.items()}
        finally:
            await asyncio.gather(*(http.close() for http in connections))
        _print(predictions, clients, elapsed, burst, before, after, after_settled, lag_at_end, settled_in, client_cpu)
    except BaseException:
        kept = Path(tempfile.gettempdir()) / "cogwheel-throughput-logs"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(work / "logs", kept, dirs_exist_ok=True)
        print(f"the services' logs are kept in {kept}")
        raise
    finally:
        await stack.stop()
        await asyncio.to_thread(postgres.stop)
        await nats_server.astop()
        shutil.rmtree(work, ignore_errors=True)


async def _start_profilers(pids: dict[str, int | None]) -> list[asyncio.subprocess.Process]:
    directory = os.environ.get("COGWHEEL_BENCH_PROFILE")
    if not directory:
        return []
    Path(directory).mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [
        await asyncio.create_subprocess_exec(
            py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "200", "--nonblocking", "--gil",
            "--output", str(Path(directory) / f"{name}.txt"),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        for name, pid in pids.items() if pid
    ]


async def _stop_profilers(profilers: list[asyncio.subprocess.Process]) -> None:
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    await asyncio.gather(*(profiler.wait() for profiler in profilers))


async def _settle(nats_url: str, timeout: float = 120.0) -> float:
    """Seconds until every durable consumer has caught up (or `timeout`)."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if not any((await consumer_lag(nats_url)).values()):
            break
        await asyncio.sleep(0.2)
    return time.perf_counter() - began


def _print(
    n: int, clients: int, elapsed: float, burst: Burst, before: dict[str, float], after: dict[str, float],
    after_settled: dict[str, float], lag: dict[str, int], settled_in: float, client_cpu: float,
) -> None:
    print(f"\nthroughput: {n} hello-world predictions, {clients} concurrent clients creating and polling"
          f" ({os.cpu_count()} CPUs)")
    print(f"  rate {n / elapsed:.1f} predictions/s over {elapsed:.1f} s; statuses {burst.statuses};"
          f" polls repeated after a connection error: {burst.poll_errors}")
    print(f"  polls per prediction {burst.polls / n:.2f}; the load generator itself used"
          f" {client_cpu * 1000 / n:.2f} ms of CPU per prediction (not counted below)")
    for label, samples in (("create request", burst.created_ms), ("create to terminal (polled)", burst.completed_ms)):
        print(f"  {label:<30} p50 {percentile(samples, 0.5):8.1f} ms   p99 {percentile(samples, 0.99):8.1f} ms")
    print(f"\n{'process':<24} {'CPU ms/prediction (burst)':>26} {'incl. catching up':>18}")
    total = total_settled = 0.0
    for name in sorted(before):
        during = (after[name] - before[name]) * 1000 / n
        settled = (after_settled[name] - before[name]) * 1000 / n
        total += during
        total_settled += settled
        print(f"{name:<24} {during:>26.2f} {settled:>18.2f}")
    print(f"{'all processes':<24} {total:>26.2f} {total_settled:>18.2f}")
    print(f"\nconsumer lag right after the burst (settled {settled_in:.1f} s later)")
    for name, pending in sorted(lag.items()):
        print(f"  {name:<60} {pending:>7}")
