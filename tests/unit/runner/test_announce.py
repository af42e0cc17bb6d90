"""A prediction's start is reported only when it runs past a moment, and always before its progress."""

from __future__ import annotations

import asyncio

from services.runner.announce import StartAnnouncement


class Publisher:
    def __init__(self) -> None:
        self.published = 0

    async def __call__(self) -> None:
        await asyncio.sleep(0)
        self.published += 1


async def test_a_prediction_that_ends_first_never_reports_its_start() -> None:
    publish = Publisher()
    announcement = StartAnnouncement(publish, delay=0.2)
    announcement.schedule()
    await asyncio.sleep(0.01)
    await announcement.settle()
    await asyncio.sleep(0.3)
    assert publish.published == 0


async def test_a_prediction_still_running_after_the_delay_reports_it_once() -> None:
    publish = Publisher()
    announcement = StartAnnouncement(publish, delay=0.01)
    announcement.schedule()
    await asyncio.sleep(0.1)
    assert publish.published == 1
    await announcement.now()
    await announcement.settle()
    assert publish.published == 1


async def test_progress_brings_the_start_forward_and_it_is_reported_once() -> None:
    publish = Publisher()
    announcement = StartAnnouncement(publish, delay=10)
    announcement.schedule()
    await announcement.now()  # what a progress report awaits before it is sent
    assert publish.published == 1
    await announcement.settle()
    assert publish.published == 1
