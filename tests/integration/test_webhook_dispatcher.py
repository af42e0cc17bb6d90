"""Webhook dispatcher against real PostgreSQL, NATS JetStream and an HTTP receiver on loopback.

Lifecycle events are published as the scheduler's relay publishes them (`scheduler.events.prediction.*`
envelopes, tagged `.webhook` when the prediction has one), so these tests drive the dispatcher exactly as
production does, without a scheduler or runner.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from replicate.webhook import Webhooks, WebhookSigningSecret
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from standardwebhooks import Webhook

from libs.bus.nats import Bus, connect
from libs.bus.subjects import WEBHOOK_TAG, event_subject
from libs.db.engine import sqlalchemy_url
from libs.events import Envelope, EventMetadata
from libs.eventstore.projections import rebuild_from_log
from libs.rpc import create_channel, create_server
from services.gateway.adapters.webhooks_grpc import GrpcWebhooksClient
from services.webhook_dispatcher import rpc
from services.webhook_dispatcher.bootstrap import Deps, bootstrap
from services.webhook_dispatcher.projections import PROJECTIONS
from services.webhook_dispatcher.settings import Settings
from services.webhook_dispatcher.subscribers import consume_prediction_events
from services.webhook_dispatcher.worker import run_senders

PUBLIC_URL = "http://api.test"
LOOPBACK = "127.0.0.0/8"


@dataclass
class Received:
    target: str
    headers: dict[str, str]
    raw: bytes
    at: float

    @property
    def body(self) -> dict[str, Any]:
        return json.loads(self.raw)


@dataclass
class WebhookReceiver:
    """A bare HTTP/1.1 server that records each POST and answers each path with its next scripted status."""

    statuses: dict[str, list[int]] = field(default_factory=dict)
    # Paths whose first request is never answered.
    hang_once: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    # Seconds every answer takes: a slow receiver.
    delay: float = 0.0
    # Run once a request has been read, before it is answered.
    on_request: Callable[[Received], Awaitable[None]] | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request_line = (await reader.readline()).decode()
            headers: dict[str, str] = {}
            while (line := (await reader.readline()).decode().strip()):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            target = request_line.split(" ")[1]
            self.received.append(Received(target, headers, raw, time.monotonic()))
            if self.on_request is not None:
                await self.on_request(self.received[-1])
            if target in self.hang_once:
                self.hang_once.discard(target)
                await reader.read()  # until the sender gives up or dies and the connection closes
                return
            if self.delay:
                await asyncio.sleep(self.delay)
            scripted = self.statuses.get(target) or []
            status = scripted.pop(0) if scripted else 200
            extra = f"Location: {self.url('/redirected')}\r\n" if status in (301, 302, 307) else ""
            writer.write(f"HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def for_path(self, path: str) -> list[Received]:
        return [r for r in self.received if r.target == path]


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
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


@dataclass
class RunningDispatcher:
    deps: Deps
    stop: asyncio.Event
    tasks: list[asyncio.Task[None]]

    async def shut_down(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.deps.close()

    async def crash(self) -> None:
        """Die mid-flight: every task is cancelled where it stands, nothing is settled."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.deps.close()


class Dispatchers:
    """Starts dispatcher instances (in-process) sharing a durable unique to the test."""

    def __init__(self, database_url: str, nats_url: str) -> None:
        self.database_url = database_url
        self.nats_url = nats_url
        # A durable of its own: test sessions sharing one NATS server must not take each other's messages.
        self.durable = f"webhook_dispatcher-deliveries-{uuid.uuid4().hex[:8]}"
        self.running: list[RunningDispatcher] = []

    async def start(self, **overrides: Any) -> Deps:
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "nats_url": self.nats_url,
            "public_url": PUBLIC_URL,
            "webhook_senders": 2,
            "webhook_allowed_networks": LOOPBACK,
            "webhook_retry_base_seconds": 0.05,
            "webhook_retry_window_seconds": 10.0,
            **overrides,
        }
        deps = await bootstrap(Settings(**values))
        stop = asyncio.Event()
        tasks = [
            asyncio.create_task(consume_prediction_events(deps, stop, durable=self.durable)),
            asyncio.create_task(run_senders(deps, stop)),
            asyncio.create_task(deps.relay.run(stop)),
        ]
        self.running.append(RunningDispatcher(deps, stop, tasks))
        return deps

    def instance(self, deps: Deps) -> RunningDispatcher:
        return next(r for r in self.running if r.deps is deps)

    async def close(self) -> None:
        for running in self.running:
            if not running.stop.is_set() and not all(t.done() for t in running.tasks):
                await running.shut_down()
        if self.running:
            bus = await connect(self.nats_url, name="webhook-test-cleanup")
            await bus.js.delete_consumer("SCHEDULER_EVENTS", self.durable)
            await bus.close()


@pytest.fixture
async def dispatchers(database_url: str, nats_url: str) -> AsyncIterator[Dispatchers]:
    started = Dispatchers(database_url, nats_url)
    yield started
    await started.close()


@pytest.fixture
async def dispatcher(dispatchers: Dispatchers) -> Deps:
    return await dispatchers.start()


class Lifecycle:
    """Envelopes of one prediction's `prediction-<id>` stream, numbered as the scheduler numbers them."""

    def __init__(self, webhook: str, events_filter: list[str] | None, account: str | None = None) -> None:
        self.id = uuid.uuid4().hex
        self.account = account or f"acct-{self.id[:8]}"
        self.webhook = webhook
        self.events_filter = events_filter
        self.version = 0

    def _next(self, type_: str, **data: Any) -> Envelope:
        self.version += 1
        return Envelope(
            type=type_, stream_id=f"prediction-{self.id}", stream_version=self.version, data={"id": self.id, **data},
            metadata=EventMetadata(subject_tag=WEBHOOK_TAG if self.webhook else None),
        )

    def created(self) -> Envelope:
        return self._next(
            "prediction.created", model="alice/hello", version="a" * 64, input={"text": "world"},
            webhook=self.webhook, webhook_events_filter=self.events_filter, account=self.account, source="api",
            hardware="cpu", created_at="2026-01-01T00:00:00+00:00",
        )

    def started(self) -> Envelope:
        return self._next("prediction.started", started_at="2026-01-01T00:00:01+00:00", runner_id="runner-1")

    def progressed(self, output_items: list[Any] | None = None, logs: str = "") -> Envelope:
        return self._next("prediction.progressed", output_items=output_items or [], logs=logs)

    def succeeded(self, output: Any = "hello world", logs: str = "said hello\n") -> Envelope:
        return self._next(
            "prediction.succeeded", output=output, logs=logs, started_at="2026-01-01T00:00:01+00:00",
            completed_at="2026-01-01T00:00:03+00:00", predict_time=2.0,
        )


async def publish(bus: Bus, event: Envelope, msg_id: str | None = None) -> None:
    subject = event_subject("scheduler", event.type, event.metadata.subject_tag)
    await bus.publish(subject, event.to_json(), msg_id=msg_id or event.id)


async def attempts(deps: Deps, prediction_id: str) -> list[Envelope]:
    return await deps.store.read_stream(f"webhook-{prediction_id}")


async def settled_attempts(deps: Deps, prediction_id: str, count: int, timeout: float = 15.0) -> list[Envelope]:
    async def enough() -> list[Envelope]:
        recorded = await attempts(deps, prediction_id)
        return recorded if len(recorded) >= count else []

    return await eventually(enough, timeout)


async def pending_deliveries(deps: Deps, prediction_id: str) -> int:
    async with deps.engine.connect() as conn:
        return (
            await conn.execute(
                text(
                    "SELECT count(*) FROM webhook_dispatcher.deliveries"
                    " WHERE prediction_id = :id AND status = 'pending'"
                ),
                {"id": prediction_id},
            )
        ).scalar_one()


async def applied_and_idle(deps: Deps, prediction_id: str, version: int) -> bool:
    """The dispatcher has folded the stream up to `version` and has nothing left to send for it."""
    async with deps.engine.connect() as conn:
        applied = (
            await conn.execute(
                text("SELECT stream_version FROM webhook_dispatcher.predictions WHERE prediction_id = :id"),
                {"id": prediction_id},
            )
        ).scalar()
    return applied is not None and applied >= version and await pending_deliveries(deps, prediction_id) == 0


def outcomes(recorded: list[Envelope]) -> list[tuple[str, int | None, int, str]]:
    return [(e.data["webhook_event"], e.data["status_code"], e.data["attempt"], e.data["outcome"]) for e in recorded]


async def test_start_and_completed_are_posted_signed_with_the_rendered_prediction(
    dispatcher: Deps, publisher: Bus, receiver: WebhookReceiver
) -> None:
    path = f"/hook?customId={uuid.uuid4().hex}"
    prediction = Lifecycle(receiver.url(path), None)
    published: list[Envelope] = []

    async def collect(msg: Any) -> None:
        event = Envelope.from_json(msg.data)
        if event.data["prediction_id"] == prediction.id:
            published.append(event)

    subscription = await publisher.js.subscribe(
        "webhook_dispatcher.events.delivery_attempted", cb=collect, ordered_consumer=True
    )
    events = [prediction.created(), prediction.started(), prediction.succeeded()]
    for event in events:
        await publish(publisher, event)
    # Redelivery under another Nats-Msg-Id must not send the completed webhook twice.
    await publish(publisher, events[-1], msg_id=f"{events[-1].id}-again")

    await eventually(lambda: asyncio.sleep(0, result=len(published) == 2))
    await eventually(lambda: applied_and_idle(dispatcher, prediction.id, 3))
    start, completed = receiver.for_path(path)
    assert start.headers["content-type"] == "application/json"
    assert start.body["status"] == "starting" and start.body["output"] is None
    assert completed.body["status"] == "succeeded"
    assert completed.body["output"] == "hello world"
    assert completed.body["urls"]["get"] == f"{PUBLIC_URL}/v1/predictions/{prediction.id}"
    assert completed.body["webhook_events_filter"] == ["start", "output", "logs", "completed"]
    assert completed.body["metrics"] == {"predict_time": 2.0, "total_time": 3.0, "queue_time": 1.0}

    # Signed with the account's secret; both Standard Webhooks and Replicate's own validator accept it.
    key = await dispatcher.secrets.get_or_create(prediction.account)
    for delivery in (start, completed):
        assert delivery.headers["webhook-id"].startswith("msg_")
        assert abs(int(delivery.headers["webhook-timestamp"]) - time.time()) < 60
        assert Webhook(key).verify(delivery.raw, delivery.headers)["id"] == prediction.id
        valid = Webhooks.validate(
            headers=delivery.headers, body=delivery.raw.decode(), secret=WebhookSigningSecret(key=key), tolerance=60
        )
        assert valid is None
    assert start.headers["webhook-id"] != completed.headers["webhook-id"]

    recorded = await attempts(dispatcher, prediction.id)
    assert outcomes(recorded) == [("start", 200, 1, "delivered"), ("completed", 200, 1, "delivered")]
    assert recorded[0].data["url"] == receiver.url(path)
    assert recorded[0].data["latency_ms"] >= 0
    assert recorded[0].data["error"] is None
    assert [e.data["webhook_id"] for e in recorded] == [start.headers["webhook-id"], completed.headers["webhook-id"]]
    assert [e.id for e in published] == [e.id for e in recorded]
    await subscription.unsubscribe()


@pytest.mark.parametrize(
    ("events_filter", "expected"),
    [
        (None, ["start", "output", "logs", "completed"]),
        (["completed"], ["completed"]),
        (["start", "completed"], ["start", "completed"]),
        (["logs"], ["logs", "logs"]),
        (["output"], ["output"]),
        (["output", "logs", "completed"], ["output", "logs", "completed"]),
    ],
)
async def test_filter_combinations(
    dispatchers: Dispatchers,
    publisher: Bus,
    receiver: WebhookReceiver,
    events_filter: list[str] | None,
    expected: list[str],
) -> None:
    # No throttle: each progress event is its own delivery, so what the filter lets through is exact.
    deps = await dispatchers.start(webhook_throttle_seconds=0.0)
    path = f"/filtered/{uuid.uuid4().hex}"
    prediction = Lifecycle(receiver.url(path), events_filter)
    steps = [
        prediction.created(),
        prediction.started(),
        prediction.progressed(output_items=["hel"], logs="step 1\n"),
        prediction.progressed(logs="step 2\n"),
        prediction.succeeded(output=["hel", "lo"], logs="step 1\nstep 2\n"),
    ]
    for event in steps:
        await publish(publisher, event)
        await eventually(lambda event=event: applied_and_idle(deps, prediction.id, event.stream_version))

    recorded = await attempts(deps, prediction.id)
    assert [e.data["webhook_event"] for e in recorded] == expected
    bodies = {e.data["webhook_event"]: r.body for e, r in zip(recorded, receiver.for_path(path), strict=False)}
    if "output" in bodies:
        assert bodies["output"]["output"] == ["hel"] and bodies["output"]["status"] == "processing"
    if "completed" in bodies:
        assert bodies["completed"]["output"] == ["hel", "lo"]
    assert len(receiver.for_path(path)) == len(expected)


async def test_progress_every_10ms_for_3s_is_throttled_to_about_one_delivery_per_500ms(
    dispatcher: Deps, publisher: Bus, receiver: WebhookReceiver
) -> None:
    path = f"/throttled/{uuid.uuid4().hex}"
    prediction = Lifecycle(receiver.url(path), ["logs", "completed"])
    await publish(publisher, prediction.created())
    await publish(publisher, prediction.started())
    # A new durable first replays the stream's history; the timing below starts once it has caught up.
    await eventually(lambda: applied_and_idle(dispatcher, prediction.id, 2), timeout=60)
    began = time.monotonic()
    lines = 0
    while time.monotonic() - began < 3.0:
        lines += 1
        await publish(publisher, prediction.progressed(logs=f"line {lines}\n"))
        await asyncio.sleep(0.01)
    everything = "".join(f"line {n}\n" for n in range(1, lines + 1))
    await publish(publisher, prediction.succeeded(output="done", logs=everything))
    await eventually(lambda: applied_and_idle(dispatcher, prediction.id, prediction.version), timeout=30)

    received = receiver.for_path(path)
    progress = [r for r in received if r.body["status"] == "processing"]
    assert lines > 150
    # 3 s at one per 500 ms is about 6; the last pending one may be superseded by the completed delivery.
    assert 4 <= len(progress) <= 8, len(progress)
    gaps = [later.at - earlier.at for earlier, later in zip(progress, progress[1:], strict=False)]
    # Spacing is by due time (0.5 s after the previous delivery); arrival times jitter on a loaded machine, while
    # an unthrottled sender would arrive about every 10 ms.
    assert min(gaps) >= 0.2, gaps
    # Each carries the latest state when it went out: the logs only grow.
    sizes = [len(r.body["logs"]) for r in progress]
    assert sizes == sorted(sizes) and sizes[0] > 0
    assert received[-1].body["status"] == "succeeded" and received[-1].body["logs"] == everything
    recorded = await attempts(dispatcher, prediction.id)
    assert [e.data["webhook_event"] for e in recorded] == ["logs"] * len(progress) + ["completed"]


async def test_completed_is_retried_after_5xx_429_and_timeouts_with_the_same_webhook_id(
    dispatchers: Dispatchers, publisher: Bus, receiver: WebhookReceiver
) -> None:
    deps = await dispatchers.start(webhook_timeout=0.5)
    path = f"/flaky/{uuid.uuid4().hex}"
    receiver.statuses[path] = [503, 500, 429]
    receiver.hang_once.add(path)  # the first request times out
    prediction = Lifecycle(receiver.url(path), ["completed"])
    for event in (prediction.created(), prediction.started(), prediction.succeeded()):
        await publish(publisher, event)

    recorded = await settled_attempts(deps, prediction.id, 5)
    assert outcomes(recorded) == [
        ("completed", None, 1, "retrying"),
        ("completed", 503, 2, "retrying"),
        ("completed", 500, 3, "retrying"),
        ("completed", 429, 4, "retrying"),
        ("completed", 200, 5, "delivered"),
    ]
    assert "Timeout" in recorded[0].data["error"]
    deliveries = receiver.for_path(path)
    assert len({r.headers["webhook-id"] for r in deliveries}) == 1
    key = await deps.secrets.get_or_create(prediction.account)
    assert all(Webhook(key).verify(r.raw, r.headers)["status"] == "succeeded" for r in deliveries)


async def test_4xx_redirects_and_intermediate_failures_are_not_retried(
    dispatcher: Deps, publisher: Bus, receiver: WebhookReceiver
) -> None:
    not_found = f"/gone/{uuid.uuid4().hex}"
    moved = f"/moved/{uuid.uuid4().hex}"
    flaky_start = f"/start/{uuid.uuid4().hex}"
    receiver.statuses[not_found] = [404]
    receiver.statuses[moved] = [302]
    receiver.statuses[flaky_start] = [503]
    gone = Lifecycle(receiver.url(not_found), ["completed"])
    redirected = Lifecycle(receiver.url(moved), ["completed"])
    started = Lifecycle(receiver.url(flaky_start), ["start"])
    for prediction in (gone, redirected):
        for event in (prediction.created(), prediction.started(), prediction.succeeded()):
            await publish(publisher, event)
    await publish(publisher, started.created())

    for prediction, status in ((gone, 404), (redirected, 302), (started, 503)):
        await eventually(lambda p=prediction: applied_and_idle(dispatcher, p.id, p.version))
        assert [(e.data["status_code"], e.data["outcome"]) for e in await attempts(dispatcher, prediction.id)] == [
            (status, "failed")
        ]
    assert receiver.for_path("/redirected") == []
    assert len(receiver.for_path(not_found)) == len(receiver.for_path(moved)) == 1


async def test_completed_is_given_up_after_the_retry_window(
    dispatchers: Dispatchers, publisher: Bus, receiver: WebhookReceiver
) -> None:
    deps = await dispatchers.start(webhook_retry_window_seconds=1.5, webhook_retry_base_seconds=0.1)
    path = f"/down/{uuid.uuid4().hex}"
    receiver.statuses[path] = [503] * 1000
    prediction = Lifecycle(receiver.url(path), ["completed"])
    for event in (prediction.created(), prediction.started(), prediction.succeeded()):
        await publish(publisher, event)

    await eventually(lambda: applied_and_idle(deps, prediction.id, 3), timeout=20)
    recorded = await attempts(deps, prediction.id)
    assert len(recorded) >= 3
    assert [e.data["outcome"] for e in recorded] == ["retrying"] * (len(recorded) - 1) + ["failed"]
    span = recorded[-1].occurred_at - recorded[0].occurred_at
    assert 1.0 <= span.total_seconds() <= 5.0, span
    async with deps.engine.connect() as conn:
        status = (
            await conn.execute(
                text("SELECT status FROM webhook_dispatcher.deliveries WHERE prediction_id = :id"),
                {"id": prediction.id},
            )
        ).scalar_one()
    assert status == "failed"


async def test_a_restart_mid_retry_loses_nothing_and_keeps_the_webhook_id(
    dispatchers: Dispatchers, publisher: Bus, receiver: WebhookReceiver
) -> None:
    first = await dispatchers.start(webhook_retry_base_seconds=1.0)
    path = f"/restart/{uuid.uuid4().hex}"
    receiver.statuses[path] = [503]
    prediction = Lifecycle(receiver.url(path), ["completed"])
    for event in (prediction.created(), prediction.started(), prediction.succeeded()):
        await publish(publisher, event)
    await settled_attempts(first, prediction.id, 1)
    await dispatchers.instance(first).shut_down()

    second = await dispatchers.start()
    recorded = await settled_attempts(second, prediction.id, 2)
    assert outcomes(recorded) == [("completed", 503, 1, "retrying"), ("completed", 200, 2, "delivered")]
    assert len({r.headers["webhook-id"] for r in receiver.for_path(path)}) == 1
    await asyncio.sleep(0.3)
    assert len(receiver.for_path(path)) == 2


async def test_a_crash_mid_post_resends_the_same_delivery_after_the_lease(
    dispatchers: Dispatchers, publisher: Bus, receiver: WebhookReceiver
) -> None:
    first = await dispatchers.start(webhook_lease_seconds=1.0, webhook_timeout=30.0)
    path = f"/crash/{uuid.uuid4().hex}"
    receiver.hang_once.add(path)
    prediction = Lifecycle(receiver.url(path), ["completed"])
    for event in (prediction.created(), prediction.started(), prediction.succeeded()):
        await publish(publisher, event)
    await eventually(lambda: asyncio.sleep(0, result=len(receiver.for_path(path)) == 1))
    await dispatchers.instance(first).crash()

    second = await dispatchers.start()
    recorded = await settled_attempts(second, prediction.id, 1)
    assert outcomes(recorded) == [("completed", 200, 1, "delivered")]
    sent = receiver.for_path(path)
    assert len(sent) == 2 and sent[0].headers["webhook-id"] == sent[1].headers["webhook-id"]


OBSERVER = "webhook-test-observer"


async def test_a_database_restart_between_post_and_record_posts_once_and_records_it(
    dispatchers: Dispatchers, publisher: Bus, receiver: WebhookReceiver, database_url: str
) -> None:
    """After a PostgreSQL restart each pooled connection fails its next transaction; when that is the one
    recording an attempt, the attempt must still be recorded, not left for the lease to run out and the same
    delivery to be POSTed again with nothing in the log about the first POST."""
    await dispatchers.start(webhook_lease_seconds=1.0)
    path = f"/db-restart/{uuid.uuid4().hex}"
    # The test's own connections are fresh each time and spared by name: only the dispatcher's are broken.
    admin = create_async_engine(sqlalchemy_url(database_url), poolclass=NullPool,
                                connect_args={"application_name": OBSERVER})

    async def break_the_dispatchers_connections(received: Received) -> None:
        if received.target == path and len(receiver.for_path(path)) == 1:
            async with admin.connect() as conn:
                await conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND application_name <> :observer"
                ), {"observer": OBSERVER})

    receiver.on_request = break_the_dispatchers_connections
    prediction = Lifecycle(receiver.url(path), ["completed"])
    try:
        for event in (prediction.created(), prediction.started(), prediction.succeeded()):
            await publish(publisher, event)

        async def recorded() -> list[tuple[Any, ...]]:
            async with admin.connect() as conn:
                rows = await conn.execute(
                    text("SELECT data FROM webhook_dispatcher.events WHERE stream_id = :s ORDER BY stream_version"),
                    {"s": f"webhook-{prediction.id}"},
                )
                return [(d["webhook_event"], d["status_code"], d["attempt"], d["outcome"]) for (d,) in rows]

        assert await eventually(recorded) == [("completed", 200, 1, "delivered")]
        await asyncio.sleep(2.5)  # past the lease: a delivery left leased and unrecorded would go out again now
        assert await recorded() == [("completed", 200, 1, "delivered")]
        assert len(receiver.for_path(path)) == 1
        async with admin.connect() as conn:
            pending = await conn.execute(
                text("SELECT count(*) FROM webhook_dispatcher.deliveries WHERE prediction_id = :id"
                     " AND status = 'pending'"), {"id": prediction.id})
            assert pending.scalar_one() == 0
    finally:
        await admin.dispose()


async def test_two_replicas_share_the_work_without_double_delivery(
    dispatchers: Dispatchers, publisher: Bus, receiver: WebhookReceiver
) -> None:
    replicas = [await dispatchers.start(), await dispatchers.start()]
    path = f"/replicas/{uuid.uuid4().hex}"
    predictions = [Lifecycle(receiver.url(path), ["start", "completed"]) for _ in range(20)]
    for prediction in predictions:
        for event in (prediction.created(), prediction.started(), prediction.succeeded()):
            await publish(publisher, event)

    for prediction in predictions:
        await eventually(lambda p=prediction: applied_and_idle(replicas[0], p.id, 3), timeout=30)
    await asyncio.sleep(0.3)
    sent = receiver.for_path(path)
    assert len(sent) == 40
    assert len({r.headers["webhook-id"] for r in sent}) == 40
    for prediction in predictions:
        mine = [r.body["status"] for r in sent if r.body["id"] == prediction.id]
        assert mine == ["starting", "succeeded"]
        assert outcomes(await attempts(replicas[0], prediction.id)) == [
            ("start", 200, 1, "delivered"),
            ("completed", 200, 1, "delivered"),
        ]


async def test_a_slow_receiver_gets_each_delivery_once_from_two_replicas(
    dispatchers: Dispatchers, publisher: Bus, receiver: WebhookReceiver
) -> None:
    # One sender per replica and a receiver slower than the lease is long relative to the backlog: deliveries
    # handed over in memory wait past their lease while the other replica looks for expired leases.
    receiver.delay = 0.4
    settings = {"webhook_senders": 1, "webhook_lease_seconds": 1.5, "webhook_timeout": 1.0}
    replicas = [await dispatchers.start(**settings), await dispatchers.start(**settings)]
    path = f"/slow/{uuid.uuid4().hex}"
    predictions = [Lifecycle(receiver.url(path), ["completed"]) for _ in range(16)]
    for prediction in predictions:
        for event in (prediction.created(), prediction.started(), prediction.succeeded()):
            await publish(publisher, event)

    for prediction in predictions:
        await eventually(lambda p=prediction: applied_and_idle(replicas[0], p.id, 3), timeout=60)
    await asyncio.sleep(1.0)
    sent = receiver.for_path(path)
    assert sorted(r.body["id"] for r in sent) == sorted(p.id for p in predictions)
    for prediction in predictions:
        assert outcomes(await attempts(replicas[0], prediction.id)) == [("completed", 200, 1, "delivered")]


async def test_private_destinations_are_refused_unless_allowed(
    dispatchers: Dispatchers, publisher: Bus, receiver: WebhookReceiver
) -> None:
    deps = await dispatchers.start(webhook_allowed_networks="")
    path = f"/private/{uuid.uuid4().hex}"
    targets = [receiver.url(path), f"http://localhost:{receiver.port}{path}", "http://10.255.255.1/hook",
               "http://169.254.169.254/latest/meta-data"]
    predictions = [Lifecycle(url, ["completed"]) for url in targets]
    for prediction in predictions:
        for event in (prediction.created(), prediction.started(), prediction.succeeded()):
            await publish(publisher, event)

    for prediction in predictions:
        await eventually(lambda p=prediction: applied_and_idle(deps, p.id, 3))
        (attempt,) = await attempts(deps, prediction.id)
        assert attempt.data["status_code"] is None and attempt.data["outcome"] == "failed"
        assert attempt.data["error"].startswith("refused: ")
    assert receiver.for_path(path) == []


async def test_events_out_of_order_are_applied_in_stream_order(
    dispatcher: Deps, publisher: Bus, receiver: WebhookReceiver
) -> None:
    path = f"/ordered/{uuid.uuid4().hex}"
    prediction = Lifecycle(receiver.url(path), ["start", "completed"])
    created, started, succeeded = prediction.created(), prediction.started(), prediction.succeeded()
    await publish(publisher, succeeded)
    await publish(publisher, started)
    await asyncio.sleep(0.3)
    assert receiver.for_path(path) == []
    await publish(publisher, created)

    await settled_attempts(dispatcher, prediction.id, 2)
    assert [r.body["status"] for r in receiver.for_path(path)] == ["starting", "succeeded"]


async def test_grpc_secret_history_summary_and_rebuild(
    dispatcher: Deps, publisher: Bus, receiver: WebhookReceiver
) -> None:
    server = create_server(0, host="127.0.0.1")
    await server.start([rpc.register(server.server, dispatcher)])
    channel = create_channel(f"127.0.0.1:{server.port}")
    client = GrpcWebhooksClient(channel)
    try:
        path = f"/summary/{uuid.uuid4().hex}"
        receiver.statuses[path] = [500]
        prediction = Lifecycle(receiver.url(path), None)
        for event in (prediction.created(), prediction.started(), prediction.succeeded()):
            await publish(publisher, event)
        await eventually(lambda: applied_and_idle(dispatcher, prediction.id, 3))

        key = await client.signing_secret(prediction.account)
        assert key.startswith("whsec_") and await client.signing_secret(prediction.account) == key
        assert await client.signing_secret(f"other-{prediction.account}") != key
        created = await dispatcher.store.read_stream(f"webhook-secret-{prediction.account}")
        assert [e.type for e in created] == ["webhook.secret_created"]

        history = await client.delivery_attempts(prediction.id, prediction.account)
        assert [(a["event"], a["status_code"], a["outcome"], a["attempt"]) for a in history] == [
            ("start", 500, "failed", 1),
            ("completed", 200, "delivered", 1),
        ]
        assert history[0]["url"] == receiver.url(path) and history[0]["webhook_id"].startswith("msg_")
        assert await client.delivery_attempts(prediction.id, "someone-else") == []

        summary = await client.summary(prediction.account, 1)
        assert (summary["attempts"], summary["delivered"], summary["failed"], summary["retried"]) == (2, 1, 1, 0)
        assert summary["events"]["start"] == {"attempts": 1, "delivered": 0, "failed": 1, "retried": 0}
        assert summary["latency_ms"]["p99"] >= summary["latency_ms"]["p50"] >= 0

        before = await client.delivery_attempts(prediction.id, prediction.account)
        await rebuild_from_log(dispatcher.store, PROJECTIONS)
        assert await client.delivery_attempts(prediction.id, prediction.account) == before
        assert await client.signing_secret(prediction.account) == key
    finally:
        await channel.close()
        await server.stop(0)
