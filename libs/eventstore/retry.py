"""Retrying a unit of work that lost an optimistic-concurrency race."""

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from libs.eventstore.errors import ConcurrencyError

T = TypeVar("T")


async def retry_on_conflict(work: Callable[[], Awaitable[T]], *, attempts: int = 8) -> T:
    """Run `work` again (it must reload its state) while another writer keeps winning."""
    for attempt in range(1, attempts + 1):
        try:
            return await work()
        except ConcurrencyError:
            if attempt == attempts:
                raise
            await asyncio.sleep(random.uniform(0, 0.002 * attempt))
    raise AssertionError("unreachable")
