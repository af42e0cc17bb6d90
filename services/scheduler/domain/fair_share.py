"""Fair share between accounts on one queue: who goes into the queue now, and who waits for a turn.

Each queue (a version's or a deployment's) is one FIFO JetStream subject. While it is short, every job is
published to it at once: the common path has no extra step. Once it is backed up (more jobs admitted and not
started than `backlog_limit` allows), an account that already has its share of those admitted jobs gets its
further jobs held in the scheduler (its `work` row keeps the job; nothing is published yet), while an account
below its share still goes straight in. As the queue drains, held jobs are released one account at a time,
in turn (the account with the fewest admitted jobs first, then the one whose held job is oldest), so one
account's burst cannot push everyone else's predictions behind all of it.

An account alone in its queue has no one to share with: it may have up to `solo_backlog` jobs admitted
before further ones are held (holding would only slow it down; the bound is how far behind it an account
arriving later can find itself). Held jobs are released as soon as a prediction of the queue ends, and on
each control tick besides.

Pure functions of counts; the handlers read them from the `work` table and carry out the decisions.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sized
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class FairSharePolicy:
    # A queue with fewer admitted waiting jobs than this is never backed up, however few instances it has.
    min_backlog: int = 4
    # ... and it may hold this many admitted waiting jobs per prediction it is running (its instances'
    # concurrency in use: when the queue is backed up, every slot is busy).
    backlog_per_running: float = 2.0
    # What an account alone in the queue may have admitted and waiting (see the module's docstring).
    solo_backlog: int = 64


@dataclass(frozen=True)
class QueueLoad:
    """One queue's jobs not yet started, by account, and how many of its predictions are running."""

    running: int
    # Jobs published to the queue and not started yet, per account.
    admitted: Counter[str]
    # Jobs held back in the scheduler, per account.
    held: Counter[str]


@dataclass(frozen=True)
class HeldJob:
    prediction_id: str
    account: str
    created_at: datetime


def backlog_limit(running: int, policy: FairSharePolicy) -> int:
    """Admitted waiting jobs a queue takes before it counts as backed up."""
    return max(policy.min_backlog, math.ceil(policy.backlog_per_running * running))


def _waiting_accounts(admitted: Mapping[str, int], held: Mapping[str, Sized | int]) -> set[str]:
    return {a for a, n in admitted.items() if n} | {a for a, n in held.items() if n}


def limit_for(load: QueueLoad, account: str, policy: FairSharePolicy) -> int:
    """The queue's limit as `account` sees it: `solo_backlog` when no other account waits in it."""
    alone = _waiting_accounts(load.admitted, load.held) <= {account}
    limit = backlog_limit(load.running, policy)
    return max(limit, policy.solo_backlog) if alone else limit


def share(load: QueueLoad, account: str, policy: FairSharePolicy) -> int:
    """Each account's share of the admitted waiting jobs: the limit split between the accounts with jobs
    waiting (admitted or held), counting `account` itself; at least one."""
    accounts = {a for a, n in load.admitted.items() if n} | {a for a, n in load.held.items() if n} | {account}
    return max(1, backlog_limit(load.running, policy) // len(accounts))


def admit(load: QueueLoad, account: str, policy: FairSharePolicy) -> bool:
    """Publish a new job of `account` to the queue now (True), or hold it for a turn (False)?

    A short queue takes everyone's jobs. A backed-up one takes the job only from an account below its share
    that has nothing held already (held jobs of an account go first, in their order).
    """
    if sum(load.admitted.values()) < limit_for(load, account, policy) and not sum(load.held.values()):
        return True
    if load.held[account]:
        return False
    return load.admitted[account] < share(load, account, policy)


def release(load: QueueLoad, held: list[HeldJob], policy: FairSharePolicy) -> list[str]:
    """The held jobs to publish now (in that order) as the queue drains: while it is below its limit, one
    at a time from the account with the fewest admitted jobs (then the oldest held job), so accounts take
    turns. An account below its share is also let in when the queue is full, as `admit` would."""
    admitted = Counter(load.admitted)
    queues: dict[str, list[HeldJob]] = {}
    for job in sorted(held, key=lambda j: (j.created_at, j.prediction_id)):
        queues.setdefault(job.account, []).append(job)
    released: list[str] = []
    while queues:
        account = min(queues, key=lambda a: (admitted[a], queues[a][0].created_at, a))
        waiting_accounts = _waiting_accounts(admitted, queues)
        limit = limit_for(QueueLoad(load.running, admitted, Counter({a: len(q) for a, q in queues.items()})),
                          account, policy)
        fair = max(1, limit // len(waiting_accounts))
        if sum(admitted.values()) >= limit and admitted[account] >= fair:
            break
        job = queues[account].pop(0)
        if not queues[account]:
            del queues[account]
        admitted[account] += 1
        released.append(job.prediction_id)
    return released


@dataclass
class _RecentLoad:
    load: QueueLoad
    read_at: float


class RecentLoads:
    """Each queue's load as this scheduler last read it, plus the jobs it admitted or held since.

    Fair share is a policy of turns, not a limit (see `admit`'s callers), so a create may decide on a load read a
    moment ago instead of reading it again, as long as the answer is "admit" on the load as it was plus what
    this scheduler added since: jobs that started or ended meanwhile only make a queue shorter, and holding needs
    a fresh read, as does an answer given on a load older than `max_age` (other replicas' creates are not counted
    here). On a short queue (the common case) a create then reads nothing before its write.
    """

    def __init__(self, max_age: float = 0.5, max_queues: int = 1024) -> None:
        self._max_age = max_age
        self._max_queues = max_queues
        self._loads: dict[str, _RecentLoad] = {}

    def admits(self, queue: str, account: str, policy: FairSharePolicy, now: float) -> bool:
        """True when the recent load (with this scheduler's additions) admits the job; False means: read it."""
        recent = self._loads.get(queue)
        if recent is None or now - recent.read_at > self._max_age:
            return False
        return admit(recent.load, account, policy)

    def read(self, queue: str, load: QueueLoad, now: float) -> None:
        """The load as just read from the `work` table."""
        if queue not in self._loads and len(self._loads) >= self._max_queues:
            self._loads = {q: r for q, r in self._loads.items() if now - r.read_at <= self._max_age}
        copied = QueueLoad(load.running, Counter(load.admitted), Counter(load.held))
        self._loads[queue] = _RecentLoad(copied, now)

    def added(self, queue: str, account: str, *, admitted: bool) -> None:
        """This scheduler is adding a job of `account` to `queue`, admitted or held."""
        recent = self._loads.get(queue)
        if recent is not None:
            (recent.load.admitted if admitted else recent.load.held)[account] += 1
