"""Fair share on one queue: a short queue takes everyone's jobs; a backed-up one holds a bursting account's
further jobs and lets the others in; held jobs come back in turns as it drains."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

from services.scheduler.domain.fair_share import (
    FairSharePolicy,
    HeldJob,
    QueueLoad,
    RecentLoads,
    admit,
    backlog_limit,
    release,
)

POLICY = FairSharePolicy(min_backlog=4, backlog_per_running=2.0, solo_backlog=8)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def load(running: int = 0, admitted: dict[str, int] | None = None, held: dict[str, int] | None = None) -> QueueLoad:
    return QueueLoad(running, Counter(admitted or {}), Counter(held or {}))


def held(account: str, n: int, start: int = 0) -> list[HeldJob]:
    return [HeldJob(f"{account}{i}", account, T0 + timedelta(seconds=start + i)) for i in range(n)]


def test_the_limit_grows_with_what_the_queue_runs() -> None:
    assert backlog_limit(0, POLICY) == 4 and backlog_limit(1, POLICY) == 4 and backlog_limit(3, POLICY) == 6


def test_a_short_queue_takes_every_job() -> None:
    assert admit(load(running=1, admitted={"a": 3}), "a", POLICY)
    assert admit(load(), "a", POLICY)


def test_a_backed_up_queue_holds_the_bursting_account_and_lets_another_in() -> None:
    busy = load(running=1, admitted={"a": 4}, held={"a": 10})
    assert not admit(busy, "a", POLICY)
    assert admit(busy, "b", POLICY)
    # Two accounts share the limit of 4: b gets in twice, then waits too.
    assert admit(load(running=1, admitted={"a": 4, "b": 1}, held={"a": 10}), "b", POLICY)
    assert not admit(load(running=1, admitted={"a": 4, "b": 2}, held={"a": 10}), "b", POLICY)


def test_an_account_with_held_jobs_never_overtakes_them() -> None:
    # The queue has drained meanwhile, but a's held jobs go first, in their order.
    assert not admit(load(running=0, admitted={}, held={"a": 2}), "a", POLICY)


def test_held_jobs_are_released_in_turns_as_the_queue_drains() -> None:
    jobs = held("a", 5) + held("b", 3, start=10)
    # Room for 3 more (limit 4, one admitted): the accounts alternate, fewest admitted first.
    assert release(load(running=1, admitted={"a": 1}), jobs, POLICY) == ["b0", "a0", "b1"]
    # A full queue releases only to an account below its share.
    assert release(load(running=1, admitted={"a": 4}), jobs, POLICY) == ["b0", "b1"]
    assert release(load(running=1, admitted={"a": 2, "b": 2}), jobs, POLICY) == []


def test_one_account_alone_fills_the_queue_up_to_its_solo_allowance_in_order() -> None:
    # Nobody to share with: up to 8 admitted (solo_backlog), not the shared limit of 4.
    assert release(load(running=2, admitted={"a": 1}), held("a", 10), POLICY) == [f"a{i}" for i in range(7)]


def test_an_account_alone_is_not_held_below_its_solo_allowance() -> None:
    assert admit(load(running=1, admitted={"a": 7}), "a", POLICY)
    assert not admit(load(running=1, admitted={"a": 8}), "a", POLICY)
    # Once another account waits, the shared limit applies again.
    assert not admit(load(running=1, admitted={"a": 7, "b": 1}), "a", POLICY)


def test_a_recent_load_serves_while_it_plainly_admits_counting_what_was_added_since() -> None:
    recent = RecentLoads(max_age=0.5)
    assert not recent.admits("q", "a", POLICY, now=0.0)  # never read: read it
    recent.read("q", load(running=1, admitted={"a": 2}), now=0.0)
    # Alone in the queue, `a` may have up to solo_backlog (8) admitted: six more go in on the recent load.
    for _ in range(6):
        assert recent.admits("q", "a", POLICY, now=0.1)
        recent.added("q", "a", admitted=True)
    assert not recent.admits("q", "a", POLICY, now=0.1)  # at its limit: only a fresh read may hold the job
    # Another account arriving is counted too: `a` is no longer alone, and past its share (4 // 2).
    recent.read("q", load(running=1, admitted={"a": 5}), now=0.2)
    assert recent.admits("q", "a", POLICY, now=0.2)
    recent.added("q", "b", admitted=True)
    assert recent.admits("q", "b", POLICY, now=0.3)
    assert not recent.admits("q", "a", POLICY, now=0.3)


def test_a_recent_load_does_not_serve_once_old_or_with_jobs_held() -> None:
    recent = RecentLoads(max_age=0.5)
    recent.read("q", load(admitted={"a": 1}), now=0.0)
    assert recent.admits("q", "a", POLICY, now=0.5)
    assert not recent.admits("q", "a", POLICY, now=0.51)
    recent.read("q", load(admitted={"a": 3}), now=1.0)
    assert recent.admits("q", "a", POLICY, now=1.1)
    recent.added("q", "b", admitted=False)  # held: the queue is backed up, and `a` has its share of it
    assert not recent.admits("q", "a", POLICY, now=1.1)
    assert not recent.admits("other", "a", POLICY, now=1.1)


def test_the_load_read_is_copied_not_shared() -> None:
    recent, read = RecentLoads(), load(admitted={"a": 1})
    recent.read("q", read, now=0.0)
    recent.added("q", "a", admitted=True)
    assert read.admitted == Counter({"a": 1})
