"""Calls that arrive in the same turn of the event loop, answered together by one statement.

Under load, a server reads the requests that arrived together in one turn of its event loop, and each of them
reaches the same one-row statement (a poll's read of its prediction, a create's insert) before any has been
answered. `Coalesced` gathers those calls and runs them as one multi-row statement in the next turn: one round
trip and one statement for the server instead of one each. A call made alone waits for nothing: its turn ends at
once and it runs as a batch of one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

K = TypeVar("K")
R = TypeVar("R")

MAX_BATCH = 128


class Coalesced(Generic[K, R]):
    """`await coalesced(key)` is `run_batch([key])[0]`, with the keys of one turn run together.

    `run_batch` answers its keys in order. When a batch of several fails, each of its keys is run again alone, so
    one bad key fails only its own call (and an outage fails each call as it would have failed alone)."""

    def __init__(self, run_batch: Callable[[list[K]], Awaitable[Sequence[R]]], *, max_batch: int = MAX_BATCH) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._pending: list[tuple[K, asyncio.Future[R]]] = []
        self._flush_scheduled = False
        self._running: set[asyncio.Task[None]] = set()

    async def __call__(self, key: K) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((key, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._answer(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _answer(self, batch: list[tuple[K, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run_batch([key for key, _ in batch])
        except Exception as exc:  # noqa: BLE001 - given to the callers, or tried again one by one
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
            else:
                await asyncio.gather(*(self._answer([call]) for call in batch))
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)


def _settle(future: asyncio.Future[R], *, result: R | None = None, exc: Exception | None = None) -> None:
    if future.done():
        return  # its caller gave up (cancelled)
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)  # type: ignore[arg-type]
