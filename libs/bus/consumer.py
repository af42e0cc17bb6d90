"""Durable JetStream pull consumers shared by every instance of a service."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
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
    subject: str | Sequence[str],
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
    Several subjects make one consumer of all of them (JetStream filters, nothing else is delivered).
    """
    filters = [subject] if isinstance(subject, str) else list(subject)
    config = _durable_config(durable, filters, ack_wait, max_ack_pending, max_deliver)
    await refilter_existing(bus, stream, durable, filters)
    subject = filters[0]
    limits = DeliveryLimit(max_deliver, on_give_up)
    if mode == "pull":
        await _run_pull(bus, stream, durable, subject, handler, stop, config, batch, fetch_timeout, limits)
    else:
        await _run_push(bus, stream, durable, subject, handler, stop, config, fetch_timeout, limits)


def _durable_config(
    durable: str, filters: list[str], ack_wait: float, max_ack_pending: int, max_deliver: int
) -> ConsumerConfig:
    """A durable consumer of every message of `filters` (one subject, or several at once), acknowledged one by one."""
    return ConsumerConfig(
        durable_name=durable,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait,
        max_ack_pending=max_ack_pending,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
        max_deliver=max_deliver,
    )


async def refilter_existing(bus: Bus, stream: str, durable: str, filters: list[str]) -> None:
    """A durable made by an older release with other filter subjects takes the current ones, keeping its place
    in the stream (binding to it would otherwise keep the old filter)."""
    try:
        info = await bus.js.consumer_info(stream, durable)
    except NotFoundError:
        return
    current = info.config.filter_subjects or ([info.config.filter_subject] if info.config.filter_subject else [])
    if sorted(current) == sorted(filters):
        return
    log.info("consumer %s of %s: filter subjects %s -> %s", durable, stream, current, filters)
    updated = replace(
        info.config,
        filter_subject=filters[0] if len(filters) == 1 else None,
        filter_subjects=filters if len(filters) > 1 else None,
    )
    await bus.js.add_consumer(stream, config=updated)


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


# What a batch handler says of each message, in order: None to acknowledge it, a Retry to have it redelivered.
BatchHandler = Callable[[list[ReceivedMessage]], Awaitable[list[Retry | None]]]


async def run_batch_consumer(
    bus: Bus,
    *,
    stream: str,
    durable: str,
    subject: str | Sequence[str],
    handler: BatchHandler,
    stop: asyncio.Event,
    batch: int = 128,
    ack_wait: float = 30.0,
    max_ack_pending: int = 1024,
    fetch_timeout: float = 1.0,
    max_deliver: int = MAX_DELIVER,
    on_give_up: GiveUp | None = None,
) -> None:
    """Take whatever has arrived, up to `batch` messages, and hand them to `handler` at once.

    The handler applies a batch in one transaction, so a burst costs one commit per batch instead of one per
    message, and a quiet stream still gets each message handled as soon as it arrives (a fetch returns what is
    there without waiting to fill the batch). When the handler raises, nothing of the batch was applied: each
    message is then handled alone with `run_consumer`'s rules, so one poison message is retried, given up on
    and terminated by itself while the others go through.
    """
    filters = [subject] if isinstance(subject, str) else list(subject)
    config = _durable_config(durable, filters, ack_wait, max_ack_pending, max_deliver)
    await _pull_from_existing_push(bus, stream, durable, config)
    await refilter_existing(bus, stream, durable, filters)
    limits = DeliveryLimit(max_deliver, on_give_up)
    subscription = await bus.js.pull_subscribe(filters[0], durable=durable, stream=stream, config=config)

    async def alone(message: ReceivedMessage) -> None:
        [outcome] = await handler([message])
        if outcome is not None:
            raise outcome

    try:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(batch, timeout=fetch_timeout)
            except (TimeoutError, NatsTimeoutError):
                continue
            await _handle_batch(messages, handler, alone, durable, limits)
    finally:
        await subscription.unsubscribe()


async def _pull_from_existing_push(bus: Bus, stream: str, durable: str, config: ConsumerConfig) -> None:
    """A durable that an older release made as a push consumer cannot be pulled from: it is made again as a pull
    consumer starting after its acknowledged floor (what follows the floor is delivered again; consumers are
    idempotent, so that changes nothing)."""
    try:
        info = await bus.js.consumer_info(stream, durable)
    except NotFoundError:
        return
    if not info.config.deliver_subject:
        return
    start = (info.ack_floor.stream_seq if info.ack_floor else 0) + 1
    log.info("consumer %s of %s becomes a pull consumer from stream sequence %d", durable, stream, start)
    await bus.js.delete_consumer(stream, durable)
    await bus.js.add_consumer(
        stream, config=replace(config, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
    )


async def _handle_batch(
    messages: list[Msg], handler: BatchHandler, alone: Handler, durable: str, limits: DeliveryLimit
) -> None:
    received = [
        ReceivedMessage(msg.subject, msg.data, dict(msg.headers or {}), msg.metadata.num_delivered, msg)
        for msg in messages
    ]
    # A message past its delivery limit, or on its last chance, goes alone: its failure must not hold up the rest.
    risky = [r for r in received if limits.max_deliver > 0 and r.num_delivered >= limits.max_deliver]
    batched = [r for r in received if r not in risky]
    if batched:
        try:
            with tracer.start_as_current_span(f"consume batch of {len(batched)}", kind=trace.SpanKind.CONSUMER):
                outcomes = await handler(batched)
        except Exception:  # noqa: BLE001 - the batch was rolled back; each message is tried on its own
            log.warning("consumer %s: a batch of %d failed; handling its messages one by one", durable,
                        len(batched), exc_info=True)
            risky = received
        else:
            for message, outcome in zip(batched, outcomes, strict=True):
                if outcome is None:
                    await message._msg.ack()
                else:
                    await message._msg.nak(delay=outcome.delay)
    for message in risky:
        await _handle_one(message._msg, alone, durable, limits)
