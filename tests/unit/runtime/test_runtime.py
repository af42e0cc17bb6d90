"""The service shell: workers run until told to stop, and what setting up made is set aside for the collector."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from libs.runtime import YOUNG_COLLECTION_THRESHOLD, run_service, run_until_stopped, settle_long_lived_objects


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_objects_made_while_setting_up_are_frozen_and_young_collections_are_rarer(restored_collector: None) -> None:
    made_at_setup = [{"setting": n} for n in range(1000)]
    before = gc.get_freeze_count()
    settle_long_lived_objects()
    assert gc.get_freeze_count() >= before + len(made_at_setup)
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD > 700


async def test_running_workers_settles_first_and_stops_when_told(restored_collector: None) -> None:
    stop = asyncio.Event()
    ran: list[int] = []

    async def worker() -> None:
        ran.append(gc.get_freeze_count())
        await stop.wait()

    running = asyncio.create_task(run_until_stopped(stop, worker()))
    while not ran:
        await asyncio.sleep(0.01)
    assert ran[0] > 0
    stop.set()
    await asyncio.wait_for(running, timeout=5)


def test_a_service_runs_on_uvloop() -> None:
    import uvloop

    seen: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        seen.append(asyncio.get_running_loop())

    run_service(main())
    assert isinstance(seen[0], uvloop.Loop)
