"""One version at a time on a node, as many of its predictions as its worker has slots."""

import asyncio

from services.runner.capacity import Capacity


async def test_a_second_job_of_the_running_version_fits_once_slots_are_known() -> None:
    capacity = Capacity()
    first = await capacity.reserve(timeout=0.1)
    assert first is not None
    async with capacity.slot("v1", first):
        assert await capacity.reserve(timeout=0.01) is None  # one slot until the worker says otherwise
        await capacity.set_limit("v1", 2)
        second = await capacity.reserve(timeout=0.1)
        assert second is not None
        async with capacity.slot("v1", second):
            assert capacity.active == 2
            assert await capacity.reserve(timeout=0.01) is None
    assert capacity.active == 0 and capacity.version is None


async def test_another_version_waits_until_the_node_is_idle() -> None:
    capacity = Capacity()
    order: list[str] = []
    release = asyncio.Event()

    async def run(version: str) -> None:
        async with capacity.slot(version):
            order.append(f"start {version}")
            if version == "v1":
                await release.wait()
            order.append(f"end {version}")

    first = asyncio.create_task(run("v1"))
    await asyncio.sleep(0)
    await capacity.set_limit("v1", 4)
    second = asyncio.create_task(run("v2"))
    await asyncio.sleep(0.01)
    assert order == ["start v1"]
    release.set()
    await asyncio.gather(first, second)
    assert order == ["start v1", "end v1", "start v2", "end v2"]


async def test_a_dropped_reservation_frees_the_puller() -> None:
    capacity = Capacity()
    reservation = await capacity.reserve(timeout=0.1)
    assert await capacity.reserve(timeout=0.01) is None
    await capacity.drop(reservation)
    assert await capacity.reserve(timeout=0.1) is not None
