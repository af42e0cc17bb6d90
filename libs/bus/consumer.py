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
# Called once for a message that is given up on (its last allowed delivery failed), before it is terminated.
GiveUp = Callable[[ReceivedMessage, BaseException], Awaitable[None]]

# Deliveries of one message before it is given up on: a message that can never be processed (a poison
# message) must not be redelivered forever. Retries of out-of-order events count too, and back off up to
# seconds each, so this leaves minutes for the missing event to arrive.
MAX_DELIVER = 50


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
    max_deliver: int = MAX_DELIVER,
    on_give_up: GiveUp | None = None,
) -> None:
    """Handle messages until `stop` is set: return means ack, an exception means redeliver.

    Instances of a service share `durable`, so JetStream spreads messages across them. `push` (a queue
    group) delivers as soon as a message is stored, with no request per message, and suits event consumers;
    `pull` takes only `batch` messages when the instance asks, which suits work queues whose instances
    should take a job only when free. `max_ack_pending` bounds the work handed out but not yet acknowledged.
    A message whose `max_deliver`-th delivery fails is handed to `on_give_up` (else logged) and terminated.
    """
    config = ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
        filter_subject=subject,
        max_deliver=max_deliver,
    )
    limits = DeliveryLimit(max_deliver, on_give_up)
    if mode == "pull":
        await _run_pull(bus, stream, durable, subject, handler, stop, config, batch, fetch_timeout, limits)
    else:
        await _run_push(bus, stream, durable, subject, handler, stop, config, fetch_timeout, limits)


@dataclass(frozen=True)
class DeliveryLimit:
    max_deliver: int = MAX_DELIVER
    on_give_up: GiveUp | None = None


async def _run_push(
    bus: Bus,
    stream: str,
    durable: str,
    subject: str,
    handler: Handler,
    stop: asyncio.Event,
    config: ConsumerConfig,
    idle_timeout: float,
    limits: DeliveryLimit,
) -> None:
    subscription = await bus.js.subscribe(
        subject, queue=durable, durable=durable, stream=stream, manual_ack=True, config=config
    )
    try:
        while not stop.is_set():
            try:
                msg = await subscription.next_msg(timeout=idle_timeout)
            except (TimeoutError, NatsTimeoutError):
                continue
            await _handle_one(msg, handler, durable, limits)
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
    limits: DeliveryLimit,
) -> None:
    subscription = await bus.js.pull_subscribe(subject, durable=durable, stream=stream, config=config)
    try:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(batch, timeout=fetch_timeout)
            except (TimeoutError, NatsTimeoutError):
                continue
            for msg in messages:
                await _handle_one(msg, handler, durable, limits)
    finally:
        await subscription.unsubscribe()


async def handle_message(
    msg: Msg, handler: Handler, durable: str, limits: DeliveryLimit | None = None
) -> None:
    """Run ``handler`` on one JetStream message with run_consumer's ack/nak rules (for custom fetch loops)."""
    await _handle_one(msg, handler, durable, limits or DeliveryLimit())


class DeliveryLimitReached(Exception):
    """A message arrived more often than its consumer allows (a consumer created before the limit was set)."""


async def _handle_one(msg: Msg, handler: Handler, durable: str, limits: DeliveryLimit) -> None:
    headers = dict(msg.headers or {})
    received = ReceivedMessage(msg.subject, msg.data, headers, msg.metadata.num_delivered, msg)
    if limits.max_deliver > 0 and received.num_delivered > limits.max_deliver:
        reason = DeliveryLimitReached(f"delivered {received.num_delivered} times")
        await _give_up(received, reason, durable, limits)
        return
    last_chance = limits.max_deliver > 0 and received.num_delivered >= limits.max_deliver
    token = otel_context.attach(extract_context(headers))
    try:
        with tracer.start_as_current_span(f"consume {msg.subject}", kind=trace.SpanKind.CONSUMER):
            await handler(received)
    except Retry as retry:
        if last_chance:
            await _give_up(received, retry, durable, limits)
        else:
            await msg.nak(delay=retry.delay)
        return
    except Exception as exc:
        log.exception("consumer %s failed on %s (delivery %s)", durable, msg.subject, received.num_delivered)
        if last_chance:
            await _give_up(received, exc, durable, limits)
        else:
            await msg.nak(delay=min(0.1 * 2 ** min(received.num_delivered, 6), 10.0))
        return
    finally:
        otel_context.detach(token)
    await msg.ack()


async def _give_up(received: ReceivedMessage, reason: BaseException, durable: str, limits: DeliveryLimit) -> None:
    """The message will not be processed: say so (``on_give_up``), then terminate it so it is never redelivered."""
    log.error(
        "consumer %s gives up on %s after %s deliveries: %s", durable, received.subject, received.num_delivered,
        reason,
    )
    if limits.on_give_up is not None:
        try:
            await limits.on_give_up(received, reason)
        except Exception:  # noqa: BLE001 - the message is terminated either way; redelivering it would loop
            log.exception("consumer %s could not record giving up on %s", durable, received.subject)
    await received._msg.term()
