"""Against real NATS JetStream: outputs beyond NATS's message limit travel by reference, and a job or event
that can never be processed ends after its delivery limit instead of being redelivered forever."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from libs.blobs import (
    SAFE_PAYLOAD_BYTES,
    SPILL_BUCKET,
    delete_spilled,
    restore_spilled_fields,
    spill_large_fields,
    spilled_keys,
)
from libs.bus.consumer import ReceivedMessage, run_consumer
from libs.bus.nats import Bus, connect
from libs.bus.subjects import PREDICTION_STREAMS, RUNNER_EVENTS, STREAM_SPILL_BUCKET
from libs.events import Envelope, EventMetadata, new_event
from libs.modelpkg import push_model_dir
from libs.predictions import RunnerPredictionCompleted
from services.runner.bootstrap import bootstrap
from services.runner.settings import RunnerSettings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "predictors"
MIB = 1024 * 1024


@pytest.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await connect(nats_url, name="security-limits-test")
    await bus.ensure_streams()
    yield bus
    await bus.close()


async def _wait(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_spilled_fields_round_trip(bus: Bus) -> None:
    small = {"prediction_id": "p", "output": "short"}
    assert await spill_large_fields(bus.js, small, key="p/small", fields=("output",)) is small
    large = {"prediction_id": "p", "output": ["y" * MIB, {"n": 1}], "logs": "l" * 1000, "status": "succeeded"}
    spilled = await spill_large_fields(bus.js, large, key=f"p-{uuid.uuid4().hex}/r", fields=("output", "logs"))
    assert spilled["output"] is None and spilled["status"] == "succeeded"
    assert len(json.dumps(spilled)) < 1000
    assert await restore_spilled_fields(bus.js, spilled) == large


async def test_values_removed_by_reference_restore_as_removed(bus: Bus) -> None:
    """The retention sweep deletes what a prediction's events and reports stored by reference; folding those
    events afterwards gives null fields, not an error."""
    prediction_id = f"p-{uuid.uuid4().hex}"
    report = {"prediction_id": prediction_id, "output": "r" * MIB}
    report_key = f"{prediction_id}/report-1"
    spilled_report = await spill_large_fields(bus.js, report, key=report_key, fields=("output",))
    event = new_event("prediction.succeeded", f"prediction-{prediction_id}",
                      {"id": prediction_id, "output": "e" * MIB, "status": "succeeded"},
                      metadata=EventMetadata(causation_id="report-1"))
    event = event.model_copy(update={"data": await spill_large_fields(
        bus.js, event.data, key=f"{prediction_id}/{event.id}", fields=("output",))})
    small = new_event("prediction.started", f"prediction-{prediction_id}", {"id": prediction_id})
    keys = spilled_keys(prediction_id, [small, event])
    assert keys == [f"{prediction_id}/{event.id}", report_key]
    await delete_spilled(bus.js, keys)
    await delete_spilled(bus.js, keys)  # what is gone already is skipped
    assert await restore_spilled_fields(bus.js, event.data) == {"id": prediction_id, "output": None,
                                                                 "status": "succeeded"}
    assert await restore_spilled_fields(bus.js, spilled_report) == {"prediction_id": prediction_id, "output": None}
    assert (await bus.js.stream_info(f"OBJ_{SPILL_BUCKET}")).config.max_age in (None, 0)


async def test_stream_items_by_reference_expire_with_the_stream(bus: Bus) -> None:
    message = {"event": "output", "data": "s" * MIB}
    spilled = await spill_large_fields(bus.js, message, key=f"p-{uuid.uuid4().hex}/stream-1", fields=("data",),
                                       bucket=STREAM_SPILL_BUCKET)
    assert await restore_spilled_fields(bus.js, spilled, bucket=STREAM_SPILL_BUCKET) == message
    info = await bus.js.stream_info(f"OBJ_{STREAM_SPILL_BUCKET}")
    assert info.config.max_age == pytest.approx(PREDICTION_STREAMS.max_age_seconds)


async def test_outputs_beyond_the_nats_limit_are_reported_by_reference(bus: Bus, nats_url: str, tmp_path: Path) -> None:
    hardware = f"big{uuid.uuid4().hex[:8]}"
    settings = RunnerSettings(nats_url=nats_url, data_dir=str(tmp_path), instance_id=f"runner-{hardware}",
                              hardware=hardware, heartbeat_interval=0.5, progress_interval=0.05)
    deps = await bootstrap(settings, bus=bus)
    pushed = await push_model_dir(bus.js, FIXTURES / "big_output")
    prediction_id = f"big-{uuid.uuid4().hex}"
    reports: list[tuple[str, int, dict[str, Any]]] = []
    stream_sizes: list[int] = []

    async def on_report(msg: Any) -> None:
        envelope = Envelope.from_json(msg.data)
        if envelope.data.get("prediction_id") == prediction_id:
            reports.append((envelope.type, len(msg.data), envelope.data))

    async def on_stream(msg: Any) -> None:
        stream_sizes.append(len(msg.data))

    subscriptions = [await bus.nc.subscribe("runner.events.prediction.*", cb=on_report),
                     await bus.nc.subscribe(f"stream.prediction.{prediction_id}", cb=on_stream)]
    stop = asyncio.Event()
    task = asyncio.create_task(deps.worker.run(stop))
    try:
        job = {"prediction_id": prediction_id, "version_id": pushed.version_id, "input": {"items": 1},
               "account": "a", "created_at": "2026-01-01T00:00:00+00:00", "traceparent": None, "stream": True}
        await bus.publish(f"runner.jobs.{hardware}", json.dumps(job).encode(), msg_id=prediction_id)
        await _wait(lambda: any(kind == RunnerPredictionCompleted.TYPE for kind, _, _ in reports))
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        for subscription in subscriptions:
            await subscription.unsubscribe()
    completed = next(data for kind, _, data in reports if kind == RunnerPredictionCompleted.TYPE)
    assert completed["status"] == "succeeded", completed["error"]
    assert completed["spilled"] and completed["output"] is None
    restored = await restore_spilled_fields(bus.js, completed)
    assert restored["output"] == ["i" * 2 * MIB, "x" * 2 * MIB]
    assert all(size < SAFE_PAYLOAD_BYTES + 64 * 1024 for _, size, _ in reports)
    assert stream_sizes and all(size < SAFE_PAYLOAD_BYTES + 64 * 1024 for size in stream_sizes)


async def test_a_job_that_always_fails_ends_after_its_delivery_limit(bus: Bus, nats_url: str, tmp_path: Path) -> None:
    hardware = f"poison{uuid.uuid4().hex[:8]}"
    settings = RunnerSettings(nats_url=nats_url, data_dir=str(tmp_path), instance_id=f"runner-{hardware}",
                              hardware=hardware, heartbeat_interval=0.5, job_max_deliver=3)
    deps = await bootstrap(settings, bus=bus)
    attempts: list[str] = []

    async def never_loads(js: Any, version_id: str, cache_dir: Path) -> Path:
        attempts.append(version_id)
        raise RuntimeError("the object store is unreachable")

    deps.worker._fetch = never_loads  # a fault outside the model, on every delivery
    prediction_id = f"poison-{uuid.uuid4().hex}"
    completions: list[dict[str, Any]] = []

    async def on_report(msg: Any) -> None:
        envelope = Envelope.from_json(msg.data)
        if envelope.data.get("prediction_id") == prediction_id and envelope.type == RunnerPredictionCompleted.TYPE:
            completions.append(envelope.data)

    subscription = await bus.nc.subscribe("runner.events.prediction.completed", cb=on_report)
    stop = asyncio.Event()
    task = asyncio.create_task(deps.worker.run(stop))
    try:
        job = {"prediction_id": prediction_id, "version_id": "v" * 64, "input": {}, "account": "a",
               "created_at": "2026-01-01T00:00:00+00:00", "traceparent": None}
        await bus.publish(f"runner.jobs.{hardware}", json.dumps(job).encode(), msg_id=prediction_id)
        await _wait(lambda: completions)
        await asyncio.sleep(2)  # time for a redelivery that must not come
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await subscription.unsubscribe()
    assert len(attempts) == 3
    assert completions[0]["status"] == "failed"
    assert "could not be completed after 3 attempts (RuntimeError: the object store is unreachable)" in (
        completions[0]["error"]
    )


async def test_an_event_that_cannot_be_processed_is_given_up_on(bus: Bus) -> None:
    subject = f"runner.events.prediction.poison{uuid.uuid4().hex[:8]}"
    durable = f"poison-{uuid.uuid4().hex[:8]}"
    handled: list[int] = []
    given_up: list[tuple[int, str]] = []
    stop = asyncio.Event()

    async def handler(message: ReceivedMessage) -> None:
        handled.append(message.num_delivered)
        raise ValueError("cannot fold this event")

    async def on_give_up(message: ReceivedMessage, reason: BaseException) -> None:
        given_up.append((message.num_delivered, str(reason)))

    consumer = asyncio.create_task(run_consumer(
        bus, stream=RUNNER_EVENTS.name, durable=durable, subject=subject, handler=handler, stop=stop,
        max_deliver=4, on_give_up=on_give_up, ack_wait=1.0, fetch_timeout=0.2,
    ))
    try:
        await bus.publish(subject, b"{}", msg_id=uuid.uuid4().hex)
        await _wait(lambda: given_up, timeout=30)
        await asyncio.sleep(2)
    finally:
        stop.set()
        await asyncio.wait_for(consumer, 10)
        await bus.js.delete_consumer(RUNNER_EVENTS.name, durable)
    assert handled == [1, 2, 3, 4]
    assert given_up == [(4, "cannot fold this event")]
