"""`Coalesced`: the calls of one turn of the event loop share one batch; a failing batch fails only its bad keys."""

from __future__ import annotations

import asyncio

import pytest

from libs.db.coalesce import Coalesced


class Doubling:
    def __init__(self, *, refuse: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.refuse = refuse

    async def __call__(self, keys: list[int]) -> list[int]:
        self.batches.append(keys)
        await asyncio.sleep(0)
        if self.refuse in keys:
            raise ValueError(f"refused {self.refuse}")
        return [key * 2 for key in keys]


async def test_calls_of_one_turn_share_one_batch_and_each_gets_its_own_answer() -> None:
    run = Doubling()
    coalesced = Coalesced(run)
    assert await asyncio.gather(*(coalesced(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1, 2, 3, 4]]
    # A call alone runs at once, as a batch of one.
    assert await coalesced(7) == 14
    assert run.batches[-1] == [7]


async def test_a_full_batch_goes_without_waiting_for_the_turn_to_end() -> None:
    run = Doubling()
    coalesced = Coalesced(run, max_batch=2)
    assert await asyncio.gather(*(coalesced(n) for n in range(5))) == [0, 2, 4, 6, 8]
    assert run.batches == [[0, 1], [2, 3], [4]]


async def test_a_failing_batch_is_tried_one_by_one_so_only_the_bad_call_fails() -> None:
    run = Doubling(refuse=2)
    coalesced = Coalesced(run)
    results = await asyncio.gather(*(coalesced(n) for n in range(4)), return_exceptions=True)
    assert results[:2] == [0, 2] and results[3] == 6
    assert isinstance(results[2], ValueError)
    assert run.batches == [[0, 1, 2, 3], [0], [1], [2], [3]]


async def test_a_caller_that_gives_up_leaves_the_others_their_answers() -> None:
    run = Doubling()
    coalesced = Coalesced(run)
    calls = [asyncio.ensure_future(coalesced(n)) for n in range(3)]
    await asyncio.sleep(0)  # all three are waiting on the batch
    calls[1].cancel()
    with pytest.raises(asyncio.CancelledError):
        await calls[1]
    assert [await calls[0], await calls[2]] == [0, 4]
