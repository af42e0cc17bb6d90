"""Retry policy: only the terminal webhook is retried, with capped exponential backoff and jitter, within a window.

The window is counted from the delivery's first attempt. The last retry is scheduled no later than the end
of the window, so with the default of about a minute the final attempt lands about a minute after the
first, as on Replicate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

from services.webhook_dispatcher.domain.decisions import FINAL

_RETRYABLE_STATUS = 429


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"
    FAILED = "failed"


@dataclass(frozen=True)
class RetryPolicy:
    window_seconds: float = 60.0
    base_seconds: float = 1.0
    max_interval_seconds: float = 600.0

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds before the retry that follows `attempt` (1-based): base·2^(n-1), capped, jittered to 50–100 %."""
        ceiling = min(self.base_seconds * 2 ** min(attempt - 1, 40), self.max_interval_seconds)
        return ceiling * (rng or random).uniform(0.5, 1.0)

    def next_retry_in(self, attempt: int, elapsed_seconds: float, rng: random.Random | None = None) -> float | None:
        """Seconds until the next attempt, or None when the window is spent."""
        remaining = self.window_seconds - elapsed_seconds
        if remaining <= 0:
            return None
        return min(self.backoff(attempt, rng), remaining)


def succeeded(status_code: int | None, error: str | None) -> bool:
    return error is None and status_code is not None and 200 <= status_code < 300


def retryable(status_code: int | None, error: str | None, refused: bool = False) -> bool:
    """Timeouts and connection errors, 5xx and 429 may heal; other answers and refused destinations will not."""
    if refused:
        return False
    if error is not None:
        return True
    return status_code is not None and (status_code >= 500 or status_code == _RETRYABLE_STATUS)


def decide(
    webhook_event: str,
    attempt: int,
    elapsed_seconds: float,
    status_code: int | None,
    error: str | None,
    policy: RetryPolicy,
    *,
    refused: bool = False,
    rng: random.Random | None = None,
) -> tuple[Outcome, float | None]:
    """What becomes of a delivery after an attempt, and when to retry it."""
    if succeeded(status_code, error):
        return Outcome.DELIVERED, None
    if webhook_event != FINAL or not retryable(status_code, error, refused):
        return Outcome.FAILED, None
    delay = policy.next_retry_in(attempt, elapsed_seconds, rng)
    if delay is None:
        return Outcome.FAILED, None
    return Outcome.RETRYING, delay
