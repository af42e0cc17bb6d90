"""Minimal retry policy: only the terminal webhook is retried, and only when the receiver may recover."""

from __future__ import annotations

COMPLETED_RETRIES = 3
BASE_BACKOFF_SECONDS = 0.5


def succeeded(status_code: int | None, error: str | None) -> bool:
    return error is None and status_code is not None and 200 <= status_code < 300


def should_retry(webhook_event: str, attempt: int, status_code: int | None, error: str | None) -> bool:
    """Retry `completed` after a connection error or a 5xx, at most COMPLETED_RETRIES times."""
    if webhook_event != "completed" or attempt > COMPLETED_RETRIES:
        return False
    return error is not None or (status_code is not None and status_code >= 500)


def backoff(attempt: int) -> float:
    """Seconds before the retry that follows `attempt` (1-based): 0.5, 1, 2."""
    return BASE_BACKOFF_SECONDS * 2 ** (attempt - 1)
