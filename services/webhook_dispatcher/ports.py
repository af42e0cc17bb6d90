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


class ClaimedDelivery(BaseModel):
    """A delivery a sender holds under `lease_token` until its attempt is recorded or the lease ends."""

    model_config = ConfigDict(frozen=True)

    id: str
    prediction_id: str
    account: str
    webhook_event: str
    url: str
    body: str
    attempts: int
    lease_token: str
    # Since the delivery's first attempt began, by the database's clock (0 for the first attempt).
    elapsed_seconds: float


class AttemptResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    status_code: int | None
    latency_ms: float
    error: str | None = None
    # The destination may not be reached at all (private address, invalid URL): retrying cannot help.
    refused: bool = False


class AttemptRecord(BaseModel):
    """What one attempt was and what became of its delivery."""

    model_config = ConfigDict(frozen=True)

    attempt: int
    result: AttemptResult
    outcome: str
    retry_in: float | None


class PredictionUnitOfWork(Protocol):
    async def track(self, message_id: str) -> bool:
        """False when this message was already processed."""

    async def load_view(self, prediction_id: str) -> StoredView | None:
        """The view, locked until the unit of work ends."""

    async def save_view(self, prediction_id: str, stream_version: int, view: dict[str, Any]) -> None: ...

    # Each way of queuing a delivery returns it leased to the caller for `lease_seconds` when it is due now
    # and nothing of its prediction is ahead of it (so it can be sent at once), else None.

    async def add_delivery(
        self, prediction_id: str, account: str, webhook_event: str, url: str, body: str, lease_seconds: float = 0.0
    ) -> ClaimedDelivery | None:
        """Queue a `start` delivery, due now."""

    async def coalesce_progress(
        self,
        prediction_id: str,
        account: str,
        webhook_event: str,
        url: str,
        body: str,
        throttle_seconds: float,
        lease_seconds: float = 0.0,
    ) -> ClaimedDelivery | None:
        """Replace the body of the prediction's unsent output/logs delivery, or queue one due no sooner than
        `throttle_seconds` after the prediction's previous non-final delivery."""

    async def add_final_delivery(
        self, prediction_id: str, account: str, url: str, body: str, lease_seconds: float = 0.0
    ) -> ClaimedDelivery | None:
        """Queue the `completed` delivery, superseding output/logs deliveries not yet sent."""


class DeliveryUnitOfWork(Protocol):
    async def claim_next(self, lease_seconds: float) -> ClaimedDelivery | None:
        """Lease the oldest due delivery no sender holds and that no earlier pending one of its prediction precedes."""

    async def renew(self, delivery: ClaimedDelivery, lease_seconds: float) -> ClaimedDelivery | None:
        """Extend the lease to `lease_seconds` from now if it is still this holder's (same token, still pending),
        returning the delivery as it stands; None when another sender took it over or it was settled."""

    async def release(self, deliveries: list[ClaimedDelivery]) -> None:
        """Give back leases never used, so other senders need not wait for them to run out."""

    async def seconds_until_next_due(self) -> float | None:
        """How long until a pending, unleased delivery falls due; None when there is none."""

    async def record_attempt(self, delivery: ClaimedDelivery, record: AttemptRecord) -> bool:
        """Append the attempt event and, while the lease is still this sender's, settle or reschedule the delivery
        (True when it did). Idempotent for one lease and attempt number."""


class SecretStore(Protocol):
    async def get_or_create(self, account: str) -> str:
        """The account's `whsec_…` secret; the first call creates it and records `webhook.secret_created`."""


class WebhookClient(Protocol):
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> AttemptResult: ...


PredictionUnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[PredictionUnitOfWork]]
DeliveryUnitOfWorkFactory = Callable[[], AbstractAsyncContextManager[DeliveryUnitOfWork]]
