"""Per-token request limits as token buckets: a steady rate with bursts up to the bucket's size.

Buckets live in the gateway process, so with N gateway replicas a token may reach N times the limit
(see docs/architecture.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    per_minute: float
    burst: float

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0 and self.burst > 0

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Whole seconds until one more request would be allowed (0 when allowed).
    retry_after: int
    remaining: int


ALLOWED_UNLIMITED = Decision(allowed=True, retry_after=0, remaining=0)


class TokenBucket:
    """`capacity` tokens at most, refilled continuously at `rate` per second; one request takes one."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, capacity: float, rate: float, now: float) -> None:
        self.capacity = capacity
        self.rate = rate
        self.tokens = capacity
        self.updated = now

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(self.capacity, self.tokens + elapsed * self.rate)
        self.updated = now

    def take(self, now: float) -> Decision:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return Decision(allowed=True, retry_after=0, remaining=int(self.tokens))
        wait = (1.0 - self.tokens) / self.rate
        return Decision(allowed=False, retry_after=max(1, math.ceil(wait)), remaining=0)

    def full_at(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


class RateLimiter:
    """One bucket per (key, kind); `kind` picks the limit, e.g. prediction creation vs everything else."""

    def __init__(
        self,
        limits: dict[str, Limit],
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        self._limits = limits
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[tuple[str, str], TokenBucket] = {}

    def take(self, key: str, kind: str) -> Decision:
        limit = self._limits.get(kind)
        if limit is None or not limit.enabled:
            return ALLOWED_UNLIMITED
        now = self._clock()
        bucket = self._buckets.get((key, kind))
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._forget_full(now)
            bucket = self._buckets[(key, kind)] = TokenBucket(limit.burst, limit.per_second, now)
        return bucket.take(now)

    def _forget_full(self, now: float) -> None:
        # A full bucket behaves exactly like a new one, so dropping it loses nothing.
        for key in [k for k, bucket in self._buckets.items() if bucket.full_at(now)]:
            del self._buckets[key]
        if len(self._buckets) >= self._max_buckets:
            # Every bucket is in use: the oldest one goes, which resets one key's limit and nobody else's.
            del self._buckets[next(iter(self._buckets))]
