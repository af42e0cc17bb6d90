"""A ``cogwheel up``-style NATS (per-service users): strangers are refused and the runner's user is confined."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import nats.errors
import pytest
from nats.aio.client import Client

from cogwheel.credentials import Credentials
from cogwheel.provision import provision_nats
from cogwheel.servers import with_user
from libs.blobs import FILES_BUCKET, OUTPUTS_BUCKET, get_blob, put_blob, restore_spilled_fields, spill_large_fields
from libs.bus.nats import Bus, connect, settle
from libs.bus.subjects import (
    RUNNER_JOBS,
    RUNNERS_BUCKET,
    SCHEDULER_EVENTS,
    queue_key,
    runner_durable,
    runner_jobs,
    runner_node_commands,
    runner_queue,
    runner_queue_durable,
)
from libs.infra import EmbeddedNats
from libs.testing.polling import wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def admin(secured: tuple[EmbeddedNats, Credentials]) -> AsyncIterator[Bus]:
    server, credentials = secured
    admin_url = with_user(server.url, *credentials.admin_nats())
    await provision_nats(admin_url)
    bus = await connect(admin_url, name="test-admin", user="", password="")
    yield bus
    await bus.close()


class Violations:
    """Collects the server's permission errors for one connection."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def record(self, error: Exception) -> None:
        self.messages.append(str(error))

    async def wait_for(self, needle: str) -> None:
        async def seen() -> bool:
            return any("permissions violation" in m.lower() and needle.lower() in m.lower() for m in self.messages)

        try:
            await wait_until(seen, timeout=10)
        except AssertionError as exc:
            raise AssertionError(f"no permission violation mentioning {needle!r}: {self.messages}") from exc


async def runner_client(secured: tuple[EmbeddedNats, Credentials], violations: Violations) -> Client:
    server, credentials = secured
    return await nats.connect(server.url, user="runner", password=credentials.nats_passwords["runner"],
                              inbox_prefix="_INBOX_runner", error_cb=violations.record, max_reconnect_attempts=0)


async def test_a_connection_without_credentials_is_refused(secured, admin) -> None:
    server, credentials = secured
    for options in ({}, {"user": "runner", "password": "guess"}):
        with pytest.raises(Exception, match="(?i)authoriz"):
            await nats.connect(server.url, allow_reconnect=False, connect_timeout=2, max_reconnect_attempts=0,
                               **options)


async def test_credential_files_are_private(secured) -> None:
    _, credentials = secured
    assert credentials.directory.stat().st_mode & 0o777 == 0o700
    for path in credentials.directory.iterdir():
        assert path.stat().st_mode & 0o777 == 0o600, path
    config = Path(secured[0].data_dir) / "nats.conf"
    assert config.stat().st_mode & 0o777 == 0o600


async def test_the_runner_cannot_listen_to_jobs_on_the_wire(secured, admin) -> None:
    violations = Violations()
    nc = await runner_client(secured, violations)
    try:
        seen: list[bytes] = []

        async def on_message(msg) -> None:  # type: ignore[no-untyped-def]
            seen.append(msg.data)

        await nc.subscribe("runner.jobs.>", cb=on_message)
        await settle(nc)
        await violations.wait_for("runner.jobs.>")
        await admin.publish(runner_jobs("gpu"), b'{"probe": 1}', msg_id="probe-wire")
        await asyncio.sleep(0.5)
        assert seen == []
    finally:
        await nc.close()


async def test_the_runner_cannot_read_scheduler_events(secured, admin) -> None:
    await admin.publish("scheduler.events.prediction.created", b'{"input": "private"}', msg_id="probe-events")
    violations = Violations()
    nc = await runner_client(secured, violations)
    try:
        js = nc.jetstream(timeout=2)
        with pytest.raises((nats.errors.TimeoutError, nats.errors.Error)):
            await js.get_msg(SCHEDULER_EVENTS.name, seq=1)
        await violations.wait_for(f"STREAM.MSG.GET.{SCHEDULER_EVENTS.name}")
        with pytest.raises((nats.errors.TimeoutError, nats.errors.Error)):
            await js.add_consumer(SCHEDULER_EVENTS.name, durable_name="spy")
        await violations.wait_for(f"CREATE.{SCHEDULER_EVENTS.name}")
        # Nor take the jobs of another hardware through a consumer of its own.
        with pytest.raises((nats.errors.TimeoutError, nats.errors.Error)):
            await js.add_consumer(RUNNER_JOBS.name, durable_name=runner_durable("gpu"),
                                  filter_subject=runner_jobs("gpu"))
        await violations.wait_for(f"CREATE.{RUNNER_JOBS.name}.{runner_durable('gpu')}")
    finally:
        await nc.close()


async def test_the_runner_cannot_publish_scheduler_events(secured, admin) -> None:
    before = (await admin.js.stream_info(SCHEDULER_EVENTS.name)).state.messages
    violations = Violations()
    nc = await runner_client(secured, violations)
    try:
        with pytest.raises((nats.errors.TimeoutError, nats.errors.Error)):
            await nc.jetstream(timeout=2).publish("scheduler.events.prediction.completed", b"{}")
        await violations.wait_for("scheduler.events.prediction.completed")
    finally:
        await nc.close()
    assert (await admin.js.stream_info(SCHEDULER_EVENTS.name)).state.messages == before


async def test_the_runner_does_its_own_work(secured, admin) -> None:
    """What the runner needs is allowed: its jobs through its durable, reports, files, outputs, heartbeat."""
    await admin.publish(runner_jobs("cpu"), json.dumps({"prediction_id": "p1"}).encode(), msg_id="job-1")
    await put_blob(admin.js, FILES_BUCKET, "upload-1", b"uploaded", content_type="text/plain")
    violations = Violations()
    nc = await runner_client(secured, violations)
    try:
        runner = Bus(nc)
        await runner.ensure_streams()  # they exist: the runner only looks them up
        pull = await runner.js.pull_subscribe(runner_jobs("cpu"), durable=runner_durable("cpu"),
                                              stream=RUNNER_JOBS.name)
        [job] = await pull.fetch(1, timeout=5)
        assert json.loads(job.data) == {"prediction_id": "p1"}
        await job.ack_sync()
        await runner.publish("runner.events.prediction.started", b"{}", msg_id="started-1")
        await runner.publish("stream.prediction.p1", b"{}", msg_id="stream-1")
        assert (await get_blob(runner.js, FILES_BUCKET, "upload-1")).data == b"uploaded"
        await put_blob(runner.js, OUTPUTS_BUCKET, "p1/out.txt", b"output", content_type="text/plain")
        await (await runner.js.key_value(RUNNERS_BUCKET)).put("node-1", b"{}")
        # An output over NATS's message limit travels by reference, stored by the runner itself.
        report = {"prediction_id": "p1", "output": "x" * (2 << 20)}
        spilled = await spill_large_fields(runner.js, report, key="p1/completed", fields=("output",))
        assert spilled["output"] is None
    finally:
        await nc.close()
    assert (await get_blob(admin.js, OUTPUTS_BUCKET, "p1/out.txt")).data == b"output"
    assert await restore_spilled_fields(admin.js, spilled) == report
    assert violations.messages == []


async def test_the_runner_serves_a_scheduled_queue_but_creates_no_consumer(secured, admin) -> None:
    """An instance pulls its queue through the durable the scheduler made, and answers the scheduler's commands;
    making a consumer of its own on the job stream is refused."""
    subject, durable = runner_queue("cpu", queue_key("v1")), runner_queue_durable("cpu", queue_key("v1"))
    await admin.js.add_consumer(RUNNER_JOBS.name, durable_name=durable, filter_subject=subject, ack_policy="explicit")
    await admin.publish(subject, json.dumps({"prediction_id": "p2"}).encode(), msg_id="queued-1")
    violations = Violations()
    nc = await runner_client(secured, violations)
    try:
        runner = Bus(nc)
        pull = await runner.js.pull_subscribe_bind(durable=durable, stream=RUNNER_JOBS.name)
        [job] = await pull.fetch(1, timeout=5)
        assert json.loads(job.data) == {"prediction_id": "p2"}
        await job.ack_sync()

        async def answer(msg) -> None:  # type: ignore[no-untyped-def]
            await msg.respond(b'{"ok": true}')

        await nc.subscribe(runner_node_commands("node-1"), cb=answer)
        await settle(nc)
        reply = await admin.nc.request(runner_node_commands("node-1"), b'{"op": "load"}', timeout=5)
        assert json.loads(reply.data) == {"ok": True}
        await runner.publish("runner.events.instance.ready", b"{}", msg_id="ready-1")
        assert violations.messages == []
        with pytest.raises((nats.errors.TimeoutError, nats.errors.Error)):
            await runner.js.add_consumer(RUNNER_JOBS.name, durable_name="q-cpu-mine",
                                         filter_subject=runner_queue("cpu", "mine"))
        await violations.wait_for(f"CREATE.{RUNNER_JOBS.name}")
    finally:
        await nc.close()
