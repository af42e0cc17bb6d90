"""The start of a prediction, announced only when it is worth an event.

Most predictions of small models end within milliseconds. Their completion report carries `started_at`,
and the scheduler records `prediction.started` from it, so a separate start report would only cost the
platform a report, a transaction, an event and its delivery to every consumer. The start is therefore
announced `delay` seconds after it happens, unless the prediction has ended by then, and at once before
anything else about the prediction is reported (progress reports must follow it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any

# Long enough for most small-model predictions to end first; short next to anything a person watches.
START_REPORT_DELAY_SECONDS = 0.1


class StartAnnouncement:
    def __init__(
        self, publish: Callable[[], Coroutine[Any, Any, None]], delay: float = START_REPORT_DELAY_SECONDS
    ) -> None:
        self._publish = publish
        self._delay = delay
        self._published: asyncio.Task[None] | None = None
        self._timer: asyncio.Task[None] | None = None

    def schedule(self) -> None:
        self._timer = asyncio.create_task(self._after_delay())

    async def _after_delay(self) -> None:
        await asyncio.sleep(self._delay)
        await self.now()

    async def now(self) -> None:
        """Publish the start (once) and wait until it is stored."""
        if self._published is None:
            self._published = asyncio.create_task(self._publish())
        await asyncio.shield(self._published)

    async def settle(self) -> None:
        """The prediction has ended: drop a start not yet announced, or wait for the one under way."""
        if self._timer is not None and not self._timer.done() and self._published is None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if self._published is not None:
            await self._published
