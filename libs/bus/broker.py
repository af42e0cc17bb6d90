"""FastStream's NATS broker for the subscribers it suits: plain callbacks with no acknowledgement to steer.

It connects as ``libs.bus.nats.connect`` does (the service's NATS user and password, the user's own inbox
prefix, endless reconnection) on a connection of its own, and traces every message it hands to a subscriber
with FastStream's OpenTelemetry middleware, a child of the publisher's ``traceparent``. The JetStream
consumers that need explicit acknowledgement, redelivery delays and give-up stay on nats-py
(``libs.bus.consumer``); docs/architecture.md says which is which.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

from faststream.nats import NatsBroker, NatsUserPassword
from faststream.nats.opentelemetry import NatsTelemetryMiddleware

from libs.bus.nats import credentials, inbox_prefix, settle

log = logging.getLogger(__name__)

__all__ = ["create_broker", "start_broker", "stop_broker"]


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def create_broker(url: str, *, name: str, user: str | None = None, password: str | None = None) -> NatsBroker:
    """A broker (not yet connected) for ``url`` with the service's NATS credentials; add subscribers, then start it.

    ``user``/``password`` default to ``COGWHEEL_NATS_USER``/``COGWHEEL_NATS_PASSWORD``; given, they win over
    credentials in the URL, as they do for nats-py (FastStream refuses both at once, so the URL loses its own).
    """
    user, password = credentials(user, password)
    options: dict[str, object] = {}
    if user:
        url = _without_credentials(url)
        options = {"security": NatsUserPassword(user, password), "inbox_prefix": inbox_prefix(user)}
    return NatsBroker(
        url,
        name=name,
        connect_timeout=2,
        # nats-py takes fractions of a second; FastStream's annotation says int.
        reconnect_time_wait=0.5,  # type: ignore[arg-type]
        max_reconnect_attempts=-1,
        middlewares=(NatsTelemetryMiddleware(),),
        # Every message received and processed is logged at DEBUG; failures still at ERROR.
        logger=log,
        log_level=logging.DEBUG,
        graceful_timeout=5.0,
        **options,  # type: ignore[arg-type]
    )


async def start_broker(broker: NatsBroker, *, attempts: int = 30) -> None:
    """Connect (retrying briefly, like ``connect``) and start the broker's subscribers.

    On return the server has their subscriptions: core NATS keeps no history, so a message published after
    this returns reaches them.
    """
    last_error: Exception | None = None
    for _ in range(attempts):
        try:
            connection = await broker.connect()
            break
        except Exception as exc:  # noqa: BLE001 - any connect failure is retried, then reported
            last_error = exc
            await asyncio.sleep(0.5)
    else:
        raise ConnectionError(f"the FastStream broker cannot reach NATS: {last_error}")
    await broker.start()
    await settle(connection)


async def stop_broker(broker: NatsBroker) -> None:
    """Stop the subscribers (letting a message being handled finish) and drain the broker's connection."""
    await broker.stop()
