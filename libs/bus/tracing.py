"""W3C trace context for messages, without making the bus depend on the telemetry setup."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import context, propagate


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from_headers(headers: Mapping[str, str] | None) -> context.Context:
    return propagate.extract(dict(headers or {}))
