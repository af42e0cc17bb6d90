"""The instance aggregate: decisions and node reports folded into its state; repeats change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from libs.events import EventMetadata
from services.scheduler.domain import instance as inst

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
META = EventMetadata(correlation_id="i-1")


def fold(events: list) -> inst.Instance:
    numbered = [event.model_copy(update={"stream_version": n}) for n, event in enumerate(events, start=1)]
    return inst.load("i-1", numbered)


def requested() -> list:
    return inst.decide_request("i-1", queue="v-a", label="cpu", model_version="a", deployment=None, node="n1",
                               gpu_memory_mib=0, at=T0, metadata=META)


def test_request_then_reports_until_ready() -> None:
    events = requested()
    state = fold(events)
    assert (state.state, state.node, state.queue) == ("placed", "n1", "v-a")
    for phase in ("fetching", "environment", "setup"):
        events += inst.decide_report(state, "booting", {"phase": phase, "gpu_memory_mib": 6000},
                                     at=T0 + timedelta(seconds=1), metadata=META)
        state = fold(events)
    assert (state.state, state.phase, state.gpu_memory_mib) == ("booting", "setup", 6000)
    events += inst.decide_report(state, "ready", {"slots": 2, "setup_time": 1.5}, at=T0 + timedelta(seconds=3),
                                 metadata=META)
    state = fold(events)
    assert (state.state, state.slots, state.setup_time, state.boot_time) == ("ready", 2, 1.5, 3.0)


def test_repeated_and_late_reports_change_nothing() -> None:
    events = requested()
    state = fold(events)
    events += inst.decide_report(state, "booting", {"phase": "fetching"}, at=T0, metadata=META)
    state = fold(events)
    assert inst.decide_report(state, "booting", {"phase": "fetching"}, at=T0, metadata=META) == []
    events += inst.decide_report(state, "ready", {"slots": 1}, at=T0, metadata=META)
    state = fold(events)
    assert inst.decide_report(state, "booting", {"phase": "setup"}, at=T0, metadata=META) == []
    events += inst.decide_report(state, "stopped", {"reason": "unloaded"}, at=T0, metadata=META)
    state = fold(events)
    assert state.state == "stopped"
    assert inst.decide_report(state, "ready", {"slots": 1}, at=T0, metadata=META) == []
    assert inst.decide_stop(state, reason="idle", at=T0, metadata=META) == []
    assert inst.decide_fail(state, reason="gone", at=T0, metadata=META) == []


def test_a_stop_keeps_the_schedulers_reason() -> None:
    events = requested()
    state = fold(events)
    events += inst.decide_report(state, "ready", {"slots": 1}, at=T0, metadata=META)
    state = fold(events)
    events += inst.decide_stop(state, reason="evicted to make room", at=T0, metadata=META)
    state = fold(events)
    assert state.state == "stopping" and inst.decide_stop(state, reason="again", at=T0, metadata=META) == []
    events += inst.decide_report(state, "stopped", {"reason": "unloaded"}, at=T0, metadata=META)
    assert fold(events).reason == "evicted to make room"


def test_a_refused_placement_teaches_the_versions_memory() -> None:
    events = requested()
    state = fold(events)
    events += inst.decide_report(state, "failed", {"reason": "needs 9000 MiB", "gpu_memory_mib": 9000}, at=T0,
                                 metadata=META)
    state = fold(events)
    assert (state.state, state.gpu_memory_mib, state.live) == ("failed", 9000, False)


def _tried(n: int, *, ready: bool, at: datetime) -> inst.Instance:
    """Instance number n of queue v-a, requested at `at`, that either reached ready or failed its setup."""
    ended = {"state": "stopped", "ready_at": at} if ready else {"state": "failed", "reason": "setup() failed"}
    return inst.Instance(id=f"i-{n}", queue="v-a", model_version="a", requested_at=at, since=at, **ended)


def test_boots_that_fail_in_a_row_back_off_doubling_up_to_the_cap() -> None:
    tried = [_tried(n, ready=False, at=T0 + timedelta(seconds=n)) for n in range(1, 6)]
    assert inst.boot_backoff(tried[:1], base=10, cap=60) == {}  # one failure is retried at once
    second = inst.boot_backoff(tried[:2], base=10, cap=60)[("v-a", "a")]
    assert (second.failures, second.not_before, second.reason) == (2, T0 + timedelta(seconds=12), "setup() failed")
    assert inst.boot_backoff(tried[:3], base=10, cap=60)[("v-a", "a")].not_before == T0 + timedelta(seconds=23)
    assert inst.boot_backoff(tried, base=10, cap=60)[("v-a", "a")].not_before == T0 + timedelta(seconds=65)


def test_a_boot_that_reached_ready_resets_the_count() -> None:
    tried = [_tried(1, ready=False, at=T0), _tried(2, ready=False, at=T0 + timedelta(seconds=1)),
             _tried(3, ready=True, at=T0 + timedelta(seconds=2)), _tried(4, ready=False, at=T0 + timedelta(seconds=3))]
    assert inst.boot_backoff(tried, base=10, cap=60) == {}
    live = inst.Instance(id="i-5", queue="v-a", model_version="a", requested_at=T0 + timedelta(seconds=4),
                         since=T0 + timedelta(seconds=4), state="booting")
    assert inst.boot_backoff(tried[:2] + [live], base=10, cap=60) == {}
