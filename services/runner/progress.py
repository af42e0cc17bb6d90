"""Coalesced progress reports: what a prediction produced since the last report, a few times a second at most.

A thousand tokens must not become a thousand events in PostgreSQL. Reports go out at most every
``interval`` seconds while there is something new, and the interval grows with the number of reports
(by ``interval`` every ``GROWTH_EVERY`` reports, up to ``max_interval``), so even an hour-long stream stays
at a bounded number of events. Nothing depends on them arriving: the completion report carries everything.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

GROWTH_EVERY = 20

# send(seq, output_items, logs); seq starts at 1 and has no gaps.
SendProgress = Callable[[int, list[Any], str], Awaitable[None]]


class ProgressReporter:
    def __init__(self, send: SendProgress, *, interval: float = 0.25, max_interval: float = 5.0) -> None:
        self._send = send
        self._interval, self._max_interval = interval, max(interval, max_interval)
        self._items: list[Any] = []
        self._logs: list[str] = []
        self._has_data = asyncio.Event()
        self._last_sent = float("-inf")
        self._stopped = False
        self.reports = 0

    def stop(self) -> None:
        """End ``run``; pending data is left to the completion report. (A flag as well as task cancellation:
        the NATS client may turn a cancellation during a publish into an ordinary error.)"""
        self._stopped = True
        self._has_data.set()

    def add_items(self, items: list[Any]) -> None:
        if items:
            self._items.extend(items)
            self._has_data.set()

    def add_logs(self, text: str) -> None:
        if text:
            self._logs.append(text)
            self._has_data.set()

    def current_interval(self) -> float:
        return min(self._max_interval, self._interval * (1 + self.reports // GROWTH_EVERY))

    async def run(self) -> None:
        """Send reports until cancelled; whatever is pending at cancellation is left to the completion."""
        while not self._stopped:
            await self._has_data.wait()
            delay = self._last_sent + self.current_interval() - time.monotonic()
            if delay > 0 and not self._stopped:
                await asyncio.sleep(delay)
            if not self._stopped:
                await self._flush()

    async def _flush(self) -> None:
        items, logs = self._items, "".join(self._logs)
        self._items, self._logs = [], []
        self._has_data.clear()
        if not items and not logs:
            return
        seq = self.reports + 1
        backoff = 0.1
        while True:
            try:
                await self._send(seq, items, logs)
                break
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the same report is retried: the scheduler expects no gaps
                if self._stopped:
                    return
                log.warning("progress report %s failed; retrying", seq, exc_info=True)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        self.reports = seq
        self._last_sent = time.monotonic()
