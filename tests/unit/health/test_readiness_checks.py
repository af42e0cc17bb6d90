"""Readiness checks: a dependency that does not answer makes the process not ready, and says why."""

from __future__ import annotations

from libs.health import broker_check, readiness


class Broker:
    def __init__(self, connected: bool) -> None:
        self.connected = connected
        self.asked: list[float | None] = []

    async def ping(self, timeout: float | None) -> bool:
        self.asked.append(timeout)
        return self.connected


async def test_a_disconnected_broker_makes_the_process_not_ready() -> None:
    up, down = Broker(True), Broker(False)
    ok, report = await readiness({"nats_subscribers": broker_check(up)})
    assert ok and report == {"nats_subscribers": "ok"}
    ok, report = await readiness({"nats_subscribers": broker_check(down)})
    assert not ok and "not connected" in report["nats_subscribers"]
    assert down.asked and all(timeout is not None for timeout in down.asked)  # bounded, never forever
