"""NATS connection with JetStream: idempotent stream setup and de-duplicated publishing."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError

from libs.bus.subjects import ALL_STREAMS, StreamSpec
from libs.telemetry import current_traceparent

log = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0


@dataclass(frozen=True)
class Publication:
    """One message of a batch for JetStream; `msg_id` makes publishing it again harmless."""

    subject: str
    data: bytes
    msg_id: str
    headers: dict[str, str] = field(default_factory=dict)


class Bus:
    """One NATS connection per process, shared by publishers and consumers."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()

    async def ensure_streams(self, specs: tuple[StreamSpec, ...] = ALL_STREAMS) -> None:
        for spec in specs:
            await self.ensure_stream(spec)

    async def ensure_stream(self, spec: StreamSpec) -> None:
        config = StreamConfig(
            name=spec.name,
            subjects=list(spec.subjects),
            retention=RetentionPolicy.WORK_QUEUE if spec.work_queue else RetentionPolicy.LIMITS,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_age=spec.max_age_seconds,
            max_bytes=spec.max_bytes,
            # None leaves the field out of the request: the server's default, no limit.
            max_msgs_per_subject=spec.max_msgs_per_subject,  # type: ignore[arg-type]
        )
        # Look first: under per-service NATS permissions only the admin user may create streams, while
        # every service may ask whether they exist.
        try:
            await self.js.stream_info(spec.name)
            return
        except NotFoundError:
            pass
        try:
            await self.js.add_stream(config)
        except BadRequestError:
            # Another process created it first with the same config, or it exists: both are fine.
            await self.js.stream_info(spec.name)

    async def publish(
        self,
        subject: str,
        data: bytes,
        *,
        msg_id: str,
        headers: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Publish to JetStream and wait for the stream's ack; `msg_id` makes re-publishing harmless."""
        all_headers = {"Nats-Msg-Id": msg_id}
        if headers:
            all_headers.update(headers)
        if "traceparent" not in all_headers:
            traceparent = current_traceparent()
            if traceparent:
                all_headers["traceparent"] = traceparent
        await self.js.publish(subject, data, timeout=timeout, headers=all_headers)

    async def publish_many(self, messages: Sequence[Publication], timeout: float = 5.0) -> None:
        """Publish in this order without waiting for each ack, then wait for all of them (raising if any failed).

        One connection writes them in order and the server stores them in the order it reads them, so a
        stream keeps their order; a batch that fails is published again whole, and `Nats-Msg-Id` drops what
        had been stored already.
        """
        acks = [await self.publish_unacknowledged(message) for message in messages]
        if acks:
            await asyncio.wait_for(asyncio.gather(*acks), timeout)

    async def publish_unacknowledged(self, message: Publication) -> asyncio.Future[Any]:
        """Publish without waiting: the returned future holds the stream's ack (or its refusal)."""
        headers = {"Nats-Msg-Id": message.msg_id, **(message.headers or {})}
        return await self.js.publish_async(message.subject, message.data, headers=headers)

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()


async def settle(nc: Client, timeout: float = 10.0) -> None:
    """Return once the server has processed everything this connection sent so far, subscriptions included.

    nats-py's ``flush()`` writes its PING straight to the socket while a new SUB still waits in the client's
    buffer for the flusher task, so its PONG can come back before the server has seen the SUB: a message
    published from another connection right after ``flush()`` may then find no subscriber. Waiting for the
    flusher first puts the PING behind everything queued.
    """
    # The only way to await the client's flusher; connections here never set ``flush_timeout``, so it waits.
    await asyncio.wait_for(nc._flush_pending(force_flush=True), timeout)  # noqa: SLF001
    await nc.flush(timeout=max(1, int(timeout)))


def inbox_prefix(user: str) -> str:
    """Each NATS user gets inboxes of its own, so that its permissions can deny reading others' replies."""
    return f"_INBOX_{user}"


def without_password(url: str) -> str:
    """A server URL fit for logs: its password, if any, masked."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{parts.hostname}:{parts.port}"))


def credentials(user: str | None = None, password: str | None = None) -> tuple[str, str]:
    """The NATS user and password a service connects with: those given, else ``COGWHEEL_NATS_USER``/``_PASSWORD``.

    An empty user means none: the URL's own credentials, if any, apply.
    """
    user = user if user is not None else os.environ.get("COGWHEEL_NATS_USER", "")
    password = password if password is not None else os.environ.get("COGWHEEL_NATS_PASSWORD", "")
    return user, password


async def connect(
    url: str, *, name: str, attempts: int = 30, user: str | None = None, password: str | None = None
) -> Bus:
    """Connect, retrying briefly so that services may start before NATS is ready.

    ``user``/``password`` default to ``COGWHEEL_NATS_USER``/``COGWHEEL_NATS_PASSWORD`` (what ``cogwheel up``
    gives each service); without them the URL's own credentials, if any, apply.
    """
    user, password = credentials(user, password)
    options: dict[str, str] = {}
    if user:
        options = {"user": user, "password": password, "inbox_prefix": inbox_prefix(user)}
    last_error: Exception | None = None
    for _ in range(attempts):
        try:
            nc = await nats.connect(
                url, name=name, max_reconnect_attempts=-1, reconnect_time_wait=0.5, connect_timeout=2,
                **options,  # type: ignore[arg-type]
            )
            return Bus(nc)
        except Exception as exc:  # noqa: BLE001 - any connect failure is retried, then reported
            last_error = exc
            await asyncio.sleep(0.5)
    raise ConnectionError(f"cannot reach NATS at {without_password(url)}: {last_error}")
