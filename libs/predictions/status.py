"""A prediction's status, as Replicate's API names it, and which statuses are final."""

from __future__ import annotations

from enum import StrEnum


class PredictionStatus(StrEnum):
    """Members are the strings themselves: they compare, hash and serialise as `"succeeded"` etc."""

    STARTING = "starting"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


# The one spelling of "the prediction has ended": nothing changes its output, logs or status afterwards.
TERMINAL_STATUSES: frozenset[PredictionStatus] = frozenset(
    {PredictionStatus.SUCCEEDED, PredictionStatus.FAILED, PredictionStatus.CANCELED}
)
# In the order clients and metrics list them.
ALL_STATUSES: tuple[PredictionStatus, ...] = tuple(PredictionStatus)
ENDED_STATUSES: tuple[PredictionStatus, ...] = tuple(s for s in ALL_STATUSES if s in TERMINAL_STATUSES)


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL_STATUSES
