"""Progress reports: coalesced, numbered without gaps, retried, slower as they add up."""

import asyncio
from typing import Any

from services.runner.progress import GROWTH_EVERY, ProgressReporter


async def test_items_and_logs_are_coalesced_into_numbered_reports() -> None:
    sent: list[tuple[int, list[Any], str]] = []
    first_sent = asyncio.Event()

    async def send(seq: int, items: list[Any], logs: str) -> None:
        sent.append((seq, items, logs))
        first_sent.set()

    reporter = ProgressReporter(send, interval=0.05)
    task = asyncio.create_task(reporter.run())
    reporter.add_items(["a"])
    await first_sent.wait()
    for item in "bcdef":
        reporter.add_items([item])
    reporter.add_logs("log\n")
    while reporter.reports < 2:
        await asyncio.sleep(0.01)
    task.cancel()
    assert [seq for seq, _, _ in sent] == [1, 2]
    assert [item for _, items, _ in sent for item in items] == list("abcdef")
    assert sent[1][2] == "log\n"


async def test_a_failed_report_is_retried_with_the_same_number() -> None:
    attempts: list[int] = []

    async def send(seq: int, items: list[Any], logs: str) -> None:
        attempts.append(seq)
        if len(attempts) == 1:
            raise ConnectionError("NATS is away")

    reporter = ProgressReporter(send, interval=0.01)
    task = asyncio.create_task(reporter.run())
    reporter.add_logs("x")
    while reporter.reports < 1:
        await asyncio.sleep(0.01)
    task.cancel()
    assert attempts == [1, 1]


def test_interval_grows_with_the_number_of_reports() -> None:
    async def send(seq: int, items: list[Any], logs: str) -> None:
        return None

    reporter = ProgressReporter(send, interval=0.25, max_interval=1.0)
    assert reporter.current_interval() == 0.25
    reporter.reports = GROWTH_EVERY
    assert reporter.current_interval() == 0.5
    reporter.reports = GROWTH_EVERY * 100
    assert reporter.current_interval() == 1.0
