"""Webhook dispatcher against real PostgreSQL, NATS JetStream and an HTTP receiver on loopback."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from libs.bus.nats import Bus, connect
from libs.events import Envelope
from services.webhook_dispatcher.bootstrap import Deps, bootstrap
from services.webhook_dispatcher.settings import Settings
from services.webhook_dispatcher.subscribers import consume_prediction_events
from services.webhook_dispatcher.worker import run_senders

PUBLIC_URL = "http://api.test"


@dataclass
class Received:
    target: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class WebhookReceiver:
    """A bare HTTP/1.1 server that records each POST and answers with the next scripted status."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode()
        headers: dict[str, str] = {}
        while (line := (await reader.readline()).decode().strip()):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.received.append(Received(request_line.split(" ")[1], headers, json.loads(body)))
        status = self.statuses.pop(0) if self.statuses else 200
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def for_path(self, path: str) -> list[Received]:
        return [r for r in self.received if r.target == path]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return result


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver()
    server = await asyncio.start_server(hook.handle, "127.0.0.1", 0)
    hook.port = server.sockets[0].getsockname()[1]
    yield hook
    server.close()


@pytest.fixture
async def publisher(nats_url: str) -> AsyncIterator[Bus]:
    bus = await connect(nats_url, name="webhook-test-publisher")
    await bus.ensure_streams()
    yield bus
    await bus.close()


@pytest.fixture
async def dispatcher(database_url: str, nats_url: str) -> AsyncIterator[Deps]:
    settings = Settings(database_url=database_url, nats_url=nats_url, public_url=PUBLIC_URL, webhook_senders=2)
    deps = await bootstrap(settings)
    stop = asyncio.Event()
    # A durable of its own: test sessions sharing one NATS server must not take each other's messages.
    durable = f"webhook_dispatcher-deliveries-{uuid.uuid4().hex[:8]}"
    tasks = [
        asyncio.create_task(consume_prediction_events(deps, stop, durable=durable)),
        asyncio.create_task(run_senders(deps, stop)),
        asyncio.create_task(deps.relay.run(stop)),
    ]
    yield deps
    stop.set()
    await asyncio.gather(*tasks)
    await deps.bus.js.delete_consumer("SCHEDULER_EVENTS", durable)
    await deps.close()


def lifecycle(prediction_id: str, webhook: str, events_filter: list[str] | None) -> list[Envelope]:
    stream = f"prediction-{prediction_id}"
    data: list[tuple[str, dict[str, Any]]] = [
        ("prediction.created", {
            "model": "alice/hello", "version": "a" * 64, "input": {"text": "world"}, "webhook": webhook,
            "webhook_events_filter": events_filter, "account": "alice", "source": "api", "hardware": "cpu",
            "created_at": "2026-01-01T00:00:00+00:00",
        }),
        ("prediction.started", {"started_at": "2026-01-01T00:00:01+00:00", "runner_id": "runner-1"}),
        ("prediction.succeeded", {
            "output": "hello world", "logs": "said hello\n", "started_at": "2026-01-01T00:00:01+00:00",
            "completed_at": "2026-01-01T00:00:03+00:00", "predict_time": 2.0,
        }),
    ]
    return [
        Envelope(type=type_, stream_id=stream, stream_version=version, data={"id": prediction_id, **fields})
        for version, (type_, fields) in enumerate(data, start=1)
    ]


async def publish(bus: Bus, event: Envelope, msg_id: str | None = None) -> None:
    await bus.publish(f"scheduler.events.{event.type}", event.to_json(), msg_id=msg_id or event.id)


async def attempts(deps: Deps, prediction_id: str) -> list[Envelope]:
    return await deps.store.read_stream(f"webhook-{prediction_id}")


async def test_start_and_completed_are_posted_with_the_rendered_prediction(
    dispatcher: Deps, publisher: Bus, receiver: WebhookReceiver
) -> None:
    prediction_id = uuid.uuid4().hex
    path = f"/hook?customId={prediction_id}"
    published: list[Envelope] = []

    async def collect(msg: Any) -> None:
        event = Envelope.from_json(msg.data)
        if event.data["prediction_id"] == prediction_id:
            published.append(event)

    subscription = await publisher.js.subscribe(
        "webhook_dispatcher.events.delivery_attempted", cb=collect, ordered_consumer=True
    )
    events = lifecycle(prediction_id, receiver.url(path), None)
    for event in events:
        await publish(publisher, event)
    # Redelivery under another Nats-Msg-Id must not send the completed webhook twice.
    await publish(publisher, events[-1], msg_id=f"{events[-1].id}-again")

    await eventually(lambda: asyncio.sleep(0, result=len(published) == 2))
    await asyncio.sleep(0.5)
    start, completed = receiver.for_path(path)
    assert start.headers["content-type"] == "application/json"
    assert start.body["status"] == "starting" and start.body["output"] is None
    assert completed.body["status"] == "succeeded"
    assert completed.body["output"] == "hello world"
    assert completed.body["urls"]["get"] == f"{PUBLIC_URL}/v1/predictions/{prediction_id}"
    assert completed.body["webhook_events_filter"] == ["start", "output", "logs", "completed"]
    assert completed.body["metrics"] == {"predict_time": 2.0, "total_time": 3.0}

    recorded = await attempts(dispatcher, prediction_id)
    assert [(e.data["webhook_event"], e.data["status_code"], e.data["attempt"], e.data["error"]) for e in recorded] == [
        ("start", 200, 1, None),
        ("completed", 200, 1, None),
    ]
    assert recorded[0].data["url"] == receiver.url(path)
    assert recorded[0].data["latency_ms"] >= 0
    assert [e.id for e in published] == [e.id for e in recorded]
    await subscription.unsubscribe()


async def test_filter_and_retry_of_the_completed_webhook(
    dispatcher: Deps, publisher: Bus, receiver: WebhookReceiver
) -> None:
    prediction_id = uuid.uuid4().hex
    path = f"/only-completed/{prediction_id}"
    receiver.statuses = [503]
    for event in lifecycle(prediction_id, receiver.url(path), ["completed"]):
        await publish(publisher, event)

    recorded = await _settled(dispatcher, prediction_id, 2, wait=True)
    assert [(e.data["webhook_event"], e.data["status_code"], e.data["attempt"]) for e in recorded] == [
        ("completed", 503, 1),
        ("completed", 200, 2),
    ]
    assert [r.body["status"] for r in receiver.for_path(path)] == ["succeeded", "succeeded"]


async def test_events_out_of_order_are_applied_in_stream_order(
    dispatcher: Deps, publisher: Bus, receiver: WebhookReceiver
) -> None:
    prediction_id = uuid.uuid4().hex
    path = f"/ordered/{prediction_id}"
    created, started, succeeded = lifecycle(prediction_id, receiver.url(path), ["start", "completed"])
    await publish(publisher, succeeded)
    await publish(publisher, started)
    await asyncio.sleep(0.3)
    assert receiver.for_path(path) == []
    await publish(publisher, created)

    await _settled(dispatcher, prediction_id, 2, wait=True)
    assert [r.body["status"] for r in receiver.for_path(path)] == ["starting", "succeeded"]


async def test_unreachable_receiver_gets_no_retry_for_start(dispatcher: Deps, publisher: Bus) -> None:
    prediction_id = uuid.uuid4().hex
    created = lifecycle(prediction_id, "http://127.0.0.1:9/closed", ["start"])[0]
    await publish(publisher, created)
    await _settled(dispatcher, prediction_id, 1, wait=True)
    await asyncio.sleep(0.8)
    recorded = await attempts(dispatcher, prediction_id)
    assert len(recorded) == 1
    assert recorded[0].data["status_code"] is None and recorded[0].data["error"]


async def _settled(deps: Deps, prediction_id: str, count: int, wait: bool = False) -> list[Envelope]:
    if wait:
        return await eventually(lambda: _settled(deps, prediction_id, count))
    recorded = await attempts(deps, prediction_id)
    return recorded if len(recorded) >= count else []
