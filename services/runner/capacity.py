"""How many jobs this node takes: one version at a time, as many of its predictions as its worker has slots.

The job puller reserves room before it fetches a job, so the node never holds a job it cannot start soon;
a job for another version than the one running waits (holding the reservation) until the node is idle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Reservation:
    """Room for one job the puller is about to fetch."""


class Capacity:
    def __init__(self) -> None:
        self._cond = asyncio.Condition()
        self.version: str | None = None
        self.active = 0
        self.limit = 1
        self._reservation: Reservation | None = None

    def _has_room(self) -> bool:
        return self._reservation is None and (self.active == 0 or self.active < self.limit)

    async def reserve(self, timeout: float) -> Reservation | None:
        """Room for one more job, or None when there was none within ``timeout`` seconds."""
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(self._has_room), timeout)
            except TimeoutError:
                return None
            self._reservation = Reservation()
            return self._reservation

    async def drop(self, reservation: Reservation | None) -> None:
        async with self._cond:
            if reservation is not None and self._reservation is reservation:
                self._reservation = None
                self._cond.notify_all()

    @asynccontextmanager
    async def slot(self, version: str, reservation: Reservation | None = None) -> AsyncIterator[None]:
        async with self._cond:
            await self._cond.wait_for(
                lambda: self.active == 0 or (self.version == version and self.active < self.limit)
            )
            if self.active == 0:
                self.version, self.limit = version, 1
            self.active += 1
            if reservation is not None and self._reservation is reservation:
                self._reservation = None
            self._cond.notify_all()
        try:
            yield
        finally:
            async with self._cond:
                self.active -= 1
                if self.active == 0:
                    self.version, self.limit = None, 1
                self._cond.notify_all()

    async def set_limit(self, version: str, limit: int) -> None:
        """The running version's worker runs ``limit`` predictions at once (known once it is set up)."""
        async with self._cond:
            if self.version == version:
                self.limit = max(1, limit)
                self._cond.notify_all()
