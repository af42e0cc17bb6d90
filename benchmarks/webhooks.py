"""Webhook dispatcher throughput and the delay from a `completed` event to its delivery.

The dispatcher runs as its own process (as `cogwheel up` runs it) on embedded NATS and PostgreSQL; this
process publishes scheduler lifecycle envelopes into JetStream, exactly as the scheduler's relay does, and
receives the webhooks on a keep-alive HTTP server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from benchmarks.stats import print_table, summary
from cogwheel.stack import Stack
from libs.bus.nats import Bus, connect
from libs.events import Envelope
from libs.infra import EmbeddedNats, EmbeddedPostgres, free_port

WARMUP = 20


class Receiver:
    """Records when each prediction's webhook arrived; answers 204 and keeps the connection open."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.count = 0
        self.changed = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request_line := await reader.readline():
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                self.arrivals[json.loads(body)["id"]] = time.perf_counter()
                self.count += 1
                self.changed.set()
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                del request_line
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def wait_for(self, prediction_id: str, timeout: float = 30.0) -> float:
        deadline = time.monotonic() + timeout
        while prediction_id not in self.arrivals:
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no webhook for {prediction_id}")
            try:
                await asyncio.wait_for(self.changed.wait(), timeout=remaining)
            except TimeoutError:
                pass
        return self.arrivals[prediction_id]


def _lifecycle(webhook: str) -> tuple[Envelope, Envelope]:
    prediction_id = uuid.uuid4().hex
    stream = f"prediction-{prediction_id}"
    created = Envelope(
        type="prediction.created", stream_id=stream, stream_version=1,
        data={
            "id": prediction_id, "model": "bench/hello", "version": "b" * 64, "input": {"text": "world"},
            "webhook": webhook, "webhook_events_filter": ["completed"], "account": "bench", "source": "api",
            "hardware": "cpu", "created_at": "2026-01-01T00:00:00+00:00",
        },
    )
    succeeded = Envelope(
        type="prediction.succeeded", stream_id=stream, stream_version=2,
        data={
            "id": prediction_id, "output": "hello world", "logs": "", "started_at": "2026-01-01T00:00:00+00:00",
            "completed_at": "2026-01-01T00:00:01+00:00", "predict_time": 1.0,
        },
    )
    return created, succeeded


async def _publish(bus: Bus, event: Envelope) -> None:
    await bus.publish(f"scheduler.events.{event.type}", event.to_json(), msg_id=event.id)


async def _completed_delays(bus: Bus, receiver: Receiver, webhook: str, n: int) -> list[float]:
    """One prediction at a time: `created` is applied first, then the `completed` event is timed to delivery."""
    samples = []
    for _ in range(WARMUP + n):
        created, succeeded = _lifecycle(webhook)
        await _publish(bus, created)
        await asyncio.sleep(0.02)
        began = time.perf_counter()
        await _publish(bus, succeeded)
        arrived = await receiver.wait_for(succeeded.data["id"])
        samples.append((arrived - began) * 1000)
    return samples[WARMUP:]


async def _throughput(bus: Bus, receiver: Receiver, webhook: str, n: int) -> float:
    """Deliveries per second for `n` predictions published as fast as JetStream takes them."""
    lifecycles = [_lifecycle(webhook) for _ in range(n)]
    before = receiver.count
    began = time.perf_counter()
    for created, succeeded in lifecycles:
        await _publish(bus, created)
        await _publish(bus, succeeded)
    for _, succeeded in lifecycles:
        await receiver.wait_for(succeeded.data["id"], timeout=120)
    elapsed = time.perf_counter() - began
    assert receiver.count - before == n
    return n / elapsed


async def run(samples: int = 300, burst: int = 2000) -> None:
    work = Path(tempfile.mkdtemp(prefix="cogwheel-bench-webhooks-"))
    nats = EmbeddedNats(work / "nats")
    postgres = EmbeddedPostgres(work / "postgres")
    nats_url = await nats.astart()
    database_url = await asyncio.to_thread(postgres.start)
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    webhook = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    stack = Stack(
        nats_url, database_url, work, gateway_port=free_port(), services=["webhook_dispatcher"],
        notify=lambda _line: None,
    )
    bus = await connect(nats_url, name="bench-webhooks")
    try:
        await bus.ensure_streams()
        await stack.start(timeout=120)
        delays = await _completed_delays(bus, receiver, webhook, samples)
        rate = await _throughput(bus, receiver, webhook, burst)
        print_table(
            f"webhook dispatcher (1 process, 4 senders), {samples} predictions one at a time after {WARMUP} warm-up",
            {"completed event published -> webhook received": delays},
            reference="completed event published -> webhook received",
        )
        stats = summary(delays)
        print(f"\n{'deliveries per second, ' + str(burst) + ' completed webhooks published at once':<60}"
              f" {rate:>8.0f}/s")
        print(f"target p50 <= 20 ms: {'met' if stats['p50'] <= 20 else 'NOT met'} ({stats['p50']:.2f} ms)")
    finally:
        await bus.close()
        await stack.stop()
        server.close()
        await asyncio.to_thread(postgres.stop)
        await nats.astop()
        shutil.rmtree(work, ignore_errors=True)
