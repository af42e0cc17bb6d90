"""What the billing handlers may touch."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from services.billing.domain.usage import BilledPrediction


class BillingUnitOfWork(Protocol):
    async def track(self, message_id: str) -> bool:
        """False when this message is known to be processed already. A unit of work may find that out only
        when it is written: then it writes nothing of that message (see the PostgreSQL adapter)."""

    async def remember_prediction(self, prediction: BilledPrediction) -> None: ...

    async def billed_prediction(self, prediction_id: str) -> BilledPrediction | None: ...

    async def record_usage(self, usage: dict[str, Any]) -> bool:
        """Append `usage.recorded` once per prediction; False when it already was."""


UnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[BillingUnitOfWork]]
