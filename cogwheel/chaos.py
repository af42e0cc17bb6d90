"""Fault injection: a supervised stack under load, each service, NATS and PostgreSQL SIGKILLed mid-burst in turn.

``python -m cogwheel.chaos`` (``make chaos``) brings up embedded NATS and PostgreSQL under supervision and every
service (several replicas of each), then for each kind of process runs a burst of hello-world predictions with
a ``completed`` webhook, SIGKILLs one process of that kind a third of the way in, and lets the client retry
failed creates with their ``Idempotency-Key``. Once everything settles it prints, per kill, what the client saw
and what the platform did: created, client errors, terminal, stuck, lost, billed 0/1/2+, webhooks 0/1/duplicate
and how long until every process was ready again. It exits 1 when any prediction was lost, stuck, created twice,
billed twice or had its webhook delivered twice.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from cogwheel.seed import seed
from cogwheel.servers import Servers
from cogwheel.stack import Stack
from libs.infra import free_port
from libs.predictions import TERMINAL_EVENT_TYPES

__all__ = ["KINDS", "ChaosReport", "PhaseResult", "Platform", "run_chaos"]

SERVICE_KINDS = ("gateway", "scheduler", "runner", "registry", "webhook_dispatcher", "billing")
KINDS = (*SERVICE_KINDS, "nats", "postgres")
# The load is one token's: rate limits would only add 429s to what the table counts.
UNLIMITED = {"COGWHEEL_RATE_LIMIT_PREDICTIONS_PER_MINUTE": "0", "COGWHEEL_RATE_LIMIT_REQUESTS_PER_MINUTE": "0"}
TERMINAL_EVENTS = tuple(sorted(TERMINAL_EVENT_TYPES))


@dataclass
class WebhookLog:
    """A loopback receiver of webhooks: POSTs per prediction and per delivery (``webhook-id``)."""

    delay: float = 0.0
    by_prediction: Counter[str] = field(default_factory=Counter)
    by_webhook_id: Counter[str] = field(default_factory=Counter)
    webhook_ids: dict[str, list[str]] = field(default_factory=dict)  # prediction id -> webhook-id per POST
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readline()
            headers: dict[str, str] = {}
            while line := (await reader.readline()).decode().strip():
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            if self.delay:
                await asyncio.sleep(self.delay)
            prediction_id = json.loads(body).get("id", "")
            self.by_prediction[prediction_id] += 1
            self.by_webhook_id[headers.get("webhook-id", "")] += 1
            self.webhook_ids.setdefault(prediction_id, []).append(headers.get("webhook-id", ""))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@dataclass
class PhaseResult:
    kind: str
    killed: str = ""
    requested: int = 0
    created: set[str] = field(default_factory=set)
    client_errors: int = 0
    # Requests given up after retrying until the deadline (the client never learned of an id).
    gave_up: int = 0
    recovery_seconds: float | None = None
    # Wall-clock time of the kill (time.time()), to tell which deliveries were under way when it happened.
    killed_at: float | None = None
    # Filled when the run settles.
    terminal: int = 0
    stuck: int = 0
    lost: int = 0
    created_twice: int = 0
    billed: Counter[str] = field(default_factory=Counter)
    webhooks: Counter[str] = field(default_factory=Counter)
    keys: dict[str, str] = field(default_factory=dict)  # idempotency key -> prediction id
    # What went wrong, prediction by prediction (attempt history of a webhook sent twice, ids never settled).
    details: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        found = []
        for what, count in (("lost", self.lost), ("stuck", self.stuck), ("created twice", self.created_twice),
                            ("billed twice", self.billed["2+"]), ("webhook delivered twice", self.webhooks["dup"]),
                            ("given up by the client", self.gave_up)):
            if count:
                found.append(f"{self.kind}: {count} {what}")
        return found


@dataclass
class ChaosReport:
    phases: list[PhaseResult]
    seconds: float

    def violations(self) -> list[str]:
        return [v for phase in self.phases for v in phase.violations()]

    def table(self) -> str:
        header = ("kill", "created", "client errors", "terminal", "stuck", "lost", "billed 0/1/2+",
                  "webhooks 0/1/dup", "recovery")
        rows = [header]
        for p in self.phases:
            recovery = "-" if p.recovery_seconds is None else f"{p.recovery_seconds:.1f} s"
            rows.append((
                p.killed or p.kind, str(len(p.created)), str(p.client_errors), str(p.terminal), str(p.stuck),
                str(p.lost), f"{p.billed['0']}/{p.billed['1']}/{p.billed['2+']}",
                f"{p.webhooks['0']}/{p.webhooks['1'] + p.webhooks['retried']}/{p.webhooks['dup']}", recovery,
            ))
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)) for row in rows]
        lines.insert(1, "-+-".join("-" * w for w in widths))
        return "\n".join(lines)


class Platform:
    """Embedded NATS and PostgreSQL under supervision plus every service, in a data directory of its own."""

    def __init__(self, data_dir: Path, replicas: dict[str, int], notify: Callable[[str], None]) -> None:
        self.data_dir = data_dir
        self.replicas = replicas
        self.notify = notify
        self.servers = Servers(data_dir)
        self.stack: Stack | None = None
        self.token = ""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Platform]:
        from libs.db.migrations import migrate_all

        saved = {k: os.environ.pop(k) for k in ("COGWHEEL_NATS_URL", "COGWHEEL_DATABASE_URL") if k in os.environ}
        try:
            await self.servers.start()
            self.servers.supervise(self.notify)
            await migrate_all(self.servers.database_url)
            self.stack = Stack(self.servers.nats_url, self.servers.database_url, self.data_dir,
                               gateway_port=free_port(), replicas=self.replicas, notify=self.notify,
                               extra_env=UNLIMITED)
            await self.stack.start(timeout=180)
            seeded = await seed(self.stack.registry_addr, self.servers.nats_url)
            self.token = seeded.token
            yield self
        finally:
            if self.stack is not None:
                await self.stack.stop()
            await self.servers.stop()
            os.environ.update(saved)

    @property
    def gateways(self) -> list[str]:
        assert self.stack is not None
        return [f"http://127.0.0.1:{self.stack.processes[name].env['COGWHEEL_PORT']}"
                for name in self.stack.names("gateway")]

    async def kill(self, kind: str) -> str:
        """SIGKILL one process of `kind` (supervision brings it back); returns its name."""
        assert self.stack is not None
        if kind in ("nats", "postgres"):
            pid = self.servers.pids()[kind]
            assert pid is not None, f"{kind} is not embedded"
            os.kill(pid, signal.SIGKILL)
            return kind
        name = random.choice(self.stack.names(kind))
        self.stack.processes[name].signal(signal.SIGKILL)
        return name

    async def all_ready(self, client: httpx.AsyncClient) -> bool:
        assert self.stack is not None
        for proc in self.stack.processes.values():
            if not proc.running():
                return False
            try:
                if (await client.get(proc.health_url)).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return True


async def _create_one(
    http: httpx.AsyncClient, gateways: list[str], token: str, webhook: str, phase: PhaseResult, deadline: float
) -> None:
    """Create one prediction, retrying with its Idempotency-Key (and another gateway) until it is accepted."""
    key = uuid.uuid4().hex
    body = {"input": {"text": key}, "webhook": webhook, "webhook_events_filter": ["completed"]}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    attempt = 0
    while time.monotonic() < deadline:
        gateway = gateways[(hash(key) + attempt) % len(gateways)]
        attempt += 1
        try:
            response = await http.post(f"{gateway}/v1/models/cogwheel/hello-world/predictions", json=body,
                                       headers=headers)
        except httpx.HTTPError:
            phase.client_errors += 1
            await asyncio.sleep(0.5)
            continue
        if response.status_code in (200, 201):
            prediction_id = response.json()["id"]
            phase.keys[key] = prediction_id
            phase.created.add(prediction_id)
            return
        phase.client_errors += 1
        retry_after = response.headers.get("retry-after")
        await asyncio.sleep(min(float(retry_after), 2.0) if retry_after and retry_after.isdigit() else 0.5)
    phase.gave_up += 1


async def _burst(platform: Platform, phase: PhaseResult, count: int, concurrency: int, webhook: str,
                 inject: bool, http: httpx.AsyncClient) -> None:
    phase.requested = count
    deadline = time.monotonic() + 180
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    done = 0
    kill_at = max(1, count // 3)
    killed = asyncio.Event()

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            queue.get_nowait()
            await _create_one(http, platform.gateways, platform.token, webhook, phase, deadline)
            done += 1
            if inject and done >= kill_at and not killed.is_set():
                killed.set()

    async def injector() -> None:
        if not inject:
            return
        await killed.wait()
        phase.killed_at = time.time()
        phase.killed = await platform.kill(phase.kind)
        platform.notify(f"chaos: killed {phase.killed}")
        started = time.monotonic()
        await asyncio.sleep(0.5)  # let the supervisor notice before readiness is judged
        while time.monotonic() - started < 180:
            if await platform.all_ready(http):
                phase.recovery_seconds = time.monotonic() - started
                return
            await asyncio.sleep(0.2)

    await asyncio.gather(injector(), *(worker() for _ in range(concurrency)))


def _settled_counts(database_url: str, ids: set[str]) -> tuple[set[str], set[str], dict[str, int]]:
    """(known to the scheduler, terminal, usage records per prediction) for `ids`."""
    streams = [f"prediction-{i}" for i in ids]
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        known = {row[0].removeprefix("prediction-") for row in conn.execute(
            "SELECT DISTINCT stream_id FROM scheduler.events WHERE stream_id = ANY(%s)", (streams,))}
        terminal = {row[0].removeprefix("prediction-") for row in conn.execute(
            "SELECT DISTINCT stream_id FROM scheduler.events WHERE stream_id = ANY(%s) AND type = ANY(%s)",
            (streams, list(TERMINAL_EVENTS)))}
        billed = dict(conn.execute(
            "SELECT data->>'prediction_id', count(*) FROM billing.events WHERE type = 'usage.recorded'"
            " AND data->>'prediction_id' = ANY(%s) GROUP BY 1", (list(ids),)).fetchall())
    return known, terminal, billed


def _created_per_key(database_url: str, keys: list[str]) -> Counter[str]:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT data->'input'->>'text', count(*) FROM scheduler.events WHERE type = 'prediction.created'"
            " AND data->'input'->>'text' = ANY(%s) GROUP BY 1", (keys,)).fetchall()
    return Counter({key: count for key, count in rows})


def _attempt_history(database_url: str, prediction_id: str) -> list[tuple[object, ...]]:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        return conn.execute(
            "SELECT data->>'webhook_id', data->>'attempt', data->>'status_code', data->>'error', data->>'outcome'"
            " FROM webhook_dispatcher.events WHERE stream_id = %s ORDER BY stream_version",
            (f"webhook-{prediction_id}",)).fetchall()


def _delivery_window(database_url: str, prediction_id: str) -> tuple[float, float]:
    """(when its first delivery was queued, when its last attempt was recorded), as Unix times."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT EXTRACT(EPOCH FROM (SELECT min(created_at) FROM webhook_dispatcher.deliveries"
            "  WHERE prediction_id = %s))::float8,"
            " EXTRACT(EPOCH FROM (SELECT max(recorded_at) FROM webhook_dispatcher.events"
            "  WHERE stream_id = %s))::float8",
            (prediction_id, f"webhook-{prediction_id}")).fetchone()
    assert row is not None
    return (row[0] or 0.0, row[1] or time.time())


def killed_during(start: float, end: float, kills: list[float]) -> bool:
    """Whether one of the kills (Unix times) fell within [start, end]."""
    return any(start <= at <= end for at in kills)


def _repeated_posts(webhook_ids: list[str], history: list[tuple[object, ...]], *, sender_killed: bool) -> str:
    """`retried` when every POST is an attempt of one delivery that the history records, only the last of them
    delivered (the receiver answered too late, or not at all, and the same `webhook-id` went again, as Standard
    Webhooks intends). When a webhook dispatcher was killed while the delivery was under way (`sender_killed`:
    between its queuing and its last recorded attempt, whichever burst created the prediction), one delivery
    sent again with the same `webhook-id` is the documented crash window (killed after its POST, before
    recording it): also `retried`, since receivers drop it by that id. `dup` otherwise: another `webhook-id`,
    two recorded deliveries, or a POST no attempt accounts for without a sender having died."""
    delivered = sum(1 for row in history if row[4] == "delivered")
    if len(set(webhook_ids)) != 1 or delivered > 1:
        return "dup"
    if len(webhook_ids) <= len(history) or (sender_killed and len(webhook_ids) <= len(history) + 1):
        return "retried"
    return "dup"


async def _settle(platform: Platform, phases: list[PhaseResult], hooks: WebhookLog, timeout: float) -> None:
    ids = set().union(*(p.created for p in phases))
    database_url = platform.servers.database_url
    deadline = time.monotonic() + timeout
    said = 0.0
    while True:
        known, terminal, billed = await asyncio.to_thread(_settled_counts, database_url, ids)
        hooked = {i for i in terminal if hooks.by_prediction[i] >= 1}
        if (terminal == ids and hooked == ids and set(billed) >= ids) or time.monotonic() > deadline:
            break
        if time.monotonic() - said > 10:
            said = time.monotonic()
            platform.notify(f"settling: {len(ids - terminal)} not terminal, {len(ids - hooked)} without a webhook, "
                            f"{len(ids - set(billed))} not billed")
        await asyncio.sleep(1.0)
    await asyncio.sleep(2.0)  # late duplicates (a webhook or usage record sent twice) would show up now
    known, terminal, billed = await asyncio.to_thread(_settled_counts, database_url, ids)
    per_key = await asyncio.to_thread(_created_per_key, database_url, [k for p in phases for k in p.keys])
    # Deliveries lag behind their bursts, so a dispatcher killed in its burst may hold those of earlier ones.
    dispatcher_kills = [p.killed_at for p in phases if p.kind == "webhook_dispatcher" and p.killed_at is not None]
    for phase in phases:
        phase.terminal = len(phase.created & terminal)
        phase.lost = len(phase.created - known)
        phase.stuck = len((phase.created & known) - terminal)
        phase.created_twice = sum(1 for key in phase.keys if per_key[key] > 1)
        for prediction_id in phase.created:
            times = billed.get(prediction_id, 0)
            phase.billed["0" if times == 0 else "1" if times == 1 else "2+"] += 1
            posts = hooks.by_prediction[prediction_id]
            kind = "0" if posts == 0 else "1"
            if posts > 1:
                history = await asyncio.to_thread(_attempt_history, database_url, prediction_id)
                queued, settled = await asyncio.to_thread(_delivery_window, database_url, prediction_id)
                sender_killed = killed_during(queued, settled, dispatcher_kills)
                kind = _repeated_posts(hooks.webhook_ids[prediction_id], history, sender_killed=sender_killed)
                phase.details.append(f"{prediction_id} webhook POSTs {hooks.webhook_ids[prediction_id]} ({kind}); "
                                     f"attempts recorded: {history}"
                                     + ("; a webhook dispatcher was killed meanwhile" if sender_killed else ""))
            phase.webhooks[kind] += 1
        missing = sorted(i for i in phase.created & terminal if hooks.by_prediction[i] == 0)
        if missing:
            phase.details.append(f"{len(missing)} terminal without a webhook, e.g. {missing[:3]}")


async def run_chaos(
    kinds: tuple[str, ...] = KINDS,
    per_kill: int = 200,
    concurrency: int = 8,
    replicas: dict[str, int] | None = None,
    data_dir: Path | None = None,
    settle_timeout: float = 300.0,
    webhook_delay: float = 0.0,
    notify: Callable[[str], None] = lambda line: print(f"chaos | {line}", flush=True),
    platform: Platform | None = None,
) -> ChaosReport:
    """Run a burst per kind of kill (plus one without a fault first) and report what became of each prediction.

    Brings up a platform of its own unless given a running one.
    """
    if platform is not None:
        return await _run_on(platform, kinds, per_kill, concurrency, settle_timeout, webhook_delay, notify)
    replicas = replicas or {"gateway": 2, "scheduler": 2, "runner": 2, "registry": 2, "webhook_dispatcher": 2,
                            "billing": 2}
    with tempfile.TemporaryDirectory(prefix="cogwheel-chaos-") as scratch:
        async with Platform(data_dir or Path(scratch), replicas, notify).running() as started:
            return await _run_on(started, kinds, per_kill, concurrency, settle_timeout, webhook_delay, notify)


async def _run_on(
    platform: Platform, kinds: tuple[str, ...], per_kill: int, concurrency: int, settle_timeout: float,
    webhook_delay: float, notify: Callable[[str], None],
) -> ChaosReport:
    started = time.monotonic()
    hooks = WebhookLog(delay=webhook_delay)
    receiver = await asyncio.start_server(hooks.handle, "127.0.0.1", 0)
    hooks.port = receiver.sockets[0].getsockname()[1]
    phases: list[PhaseResult] = []
    try:
        limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            for kind in ("none", *kinds):
                phase = PhaseResult(kind)
                phases.append(phase)
                notify(f"burst of {per_kill} predictions, killing {kind}")
                await _burst(platform, phase, per_kill, concurrency, hooks.url, kind != "none", http)
            notify("waiting for every prediction to settle")
            await _settle(platform, phases, hooks, settle_timeout)
    finally:
        receiver.close()
    return ChaosReport(phases, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cogwheel.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-kill", type=int, default=int(os.environ.get("CHAOS_PER_KILL", "500")),
                        help="predictions per burst (one burst per kill kind, plus one without a fault)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent client requests")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    parser.add_argument("--webhook-delay", type=float, default=0.0, help="seconds the webhook receiver takes")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="keep data and service logs here (default: a temporary directory)")
    args = parser.parse_args(argv)
    kinds = tuple(k for k in args.kinds.split(",") if k)
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds: {', '.join(sorted(unknown))}")
    report = asyncio.run(run_chaos(kinds, args.per_kill, args.concurrency, webhook_delay=args.webhook_delay,
                                   data_dir=args.data_dir))
    print(report.table())
    for phase in report.phases:
        for line in phase.details:
            print(f"{phase.kind}: {line}")
    print(f"total {report.seconds:.0f} s")
    problems = report.violations()
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
