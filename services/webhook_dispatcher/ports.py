"""What the dispatcher's handlers may touch."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict


class StoredView(BaseModel):
    model_config = ConfigDict(frozen=True)

    stream_version: int
    view: dict[str, Any]


class PendingDelivery(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    prediction_id: str
    webhook_event: str
    url: str
    body: dict[str, Any]
    attempts: int


class AttemptResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status_code: int | None
    latency_ms: float
    error: str | None = None


class PredictionUnitOfWork(Protocol):
    async def track(self, message_id: str) -> bool:
        """False when this message was already processed."""

    async def load_view(self, prediction_id: str) -> StoredView | None:
        """The view, locked until the unit of work ends."""

    async def save_view(self, prediction_id: str, stream_version: int, view: dict[str, Any]) -> None: ...

    async def add_delivery(
        self, prediction_id: str, webhook_event: str, url: str, body: dict[str, Any]
    ) -> None: ...


class DeliveryUnitOfWork(Protocol):
    async def claim_next(self) -> PendingDelivery | None:
        """The oldest due delivery no other sender holds, behind no earlier pending one of its prediction."""

    async def record_attempt(
        self,
        delivery: PendingDelivery,
        attempt: int,
        result: AttemptResult,
        status: str,
        retry_in: float | None,
    ) -> None: ...


class WebhookClient(Protocol):
    async def post(self, url: str, body: bytes) -> AttemptResult: ...


PredictionUnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[PredictionUnitOfWork]]
DeliveryUnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[DeliveryUnitOfWork]]
