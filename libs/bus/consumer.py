"""Durable JetStream pull consumers shared by every instance of a service."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import context as otel_context
from opentelemetry import trace

from libs.bus.nats import Bus
from libs.telemetry import extract_context

log = logging.getLogger(__name__)
tracer = trace.get_tracer("cogwheel.bus")


@dataclass
class ReceivedMessage:
    subject: str
    data: bytes
    headers: dict[str, str]
    num_delivered: int
    _msg: Msg

    def json(self) -> Any:
        return json.loads(self.data)

    async def in_progress(self) -> None:
        """Tell JetStream the handler is still working, so it does not redeliver yet."""
        await self._msg.in_progress()


Handler = Callable[[ReceivedMessage], Awaitable[None]]


class Retry(Exception):
    """Raised by a handler to have the message redelivered after `delay` seconds, without logging an error."""

    def __init__(self, reason: str, delay: float = 0.05) -> None:
        super().__init__(reason)
        self.delay = delay


async def run_consumer(
    bus: Bus,
    *,
    stream: str,
    durable: str,
    subject: str,
    handler: Handler,
    stop: asyncio.Event,
    mode: Literal["push", "pull"] = "push",
    batch: int = 16,
    ack_wait: float = 30.0,
    max_ack_pending: int = 256,
    fetch_timeout: float = 1.0,
) -> None:
    """Handle messages until `stop` is set: return means ack, an exception means redeliver.

    Instances of a service share `durable`, so JetStream spreads messages across them. `push` (a queue
    group) delivers as soon as a message is stored, with no request per message, and suits event consumers;
    `pull` takes only `batch` messages when the instance asks, which suits work queues whose instances
    should take a job only when free. `max_ack_pending` bounds the work handed out but not yet acknowledged.
    """
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
        filter_subject=subject,
    )
    if mode == "pull":
        await _run_pull(bus, stream, durable, subject, handler, stop, config, batch, fetch_timeout)
    else:
        await _run_push(bus, stream, durable, subject, handler, stop, config, fetch_timeout)


async def _run_push(
    bus: Bus,
    stream: str,
    durable: str,
    subject: str,
    handler: Handler,
    stop: asyncio.Event,
    config: ConsumerConfig,
    idle_timeout: float,
) -> None:
    subscription = await bus.js.subscribe(
        subject, queue=durable, durable=durable, stream=stream, manual_ack=True, config=config
    )
    try:
        while not stop.is_set():
            try:
                msg = await subscription.next_msg(timeout=idle_timeout)
            except (NatsTimeoutError, asyncio.TimeoutError):
                continue
            await _handle_one(msg, handler, durable)
    finally:
        await subscription.unsubscribe()


async def _run_pull(
    bus: Bus,
    stream: str,
    durable: str,
    subject: str,
    handler: Handler,
    stop: asyncio.Event,
    config: ConsumerConfig,
    batch: int,
    fetch_timeout: float,
) -> None:
    subscription = await bus.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
    try:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(batch, timeout=fetch_timeout)
            except (NatsTimeoutError, asyncio.TimeoutError):
                continue
            for msg in messages:
                await _handle_one(msg, handler, durable)
    finally:
        await subscription.unsubscribe()


async def handle_message(msg: Msg, handler: Handler, durable: str) -> None:
    """Run ``handler`` on one JetStream message with run_consumer's ack/nak rules (for custom fetch loops)."""
    await _handle_one(msg, handler, durable)


async def _handle_one(msg: Msg, handler: Handler, durable: str) -> None:
    headers = dict(msg.headers or {})
    received = ReceivedMessage(msg.subject, msg.data, headers, msg.metadata.num_delivered, msg)
    token = otel_context.attach(extract_context(headers))
    try:
        with tracer.start_as_current_span(f"consume {msg.subject}", kind=trace.SpanKind.CONSUMER):
            await handler(received)
    except Retry as retry:
        await msg.nak(delay=retry.delay)
        return
    except Exception:
        delay = min(0.1 * 2 ** min(received.num_delivered, 6), 10.0)
        log.exception("consumer %s failed on %s (delivery %s)", durable, msg.subject, received.num_delivered)
        await msg.nak(delay=delay)
        return
    finally:
        otel_context.detach(token)
    await msg.ack()
