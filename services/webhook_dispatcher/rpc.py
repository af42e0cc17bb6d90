"""gRPC servicer of `cogwheel.webhooks.v1.WebhooksService`."""

from __future__ import annotations

from typing import Any

import grpc

from libs.pb.cogwheel.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc
from services.webhook_dispatcher.bootstrap import Deps
from services.webhook_dispatcher.domain.signing import webhook_id

MAX_SUMMARY_HOURS = 24 * 31


class InvalidRequest(ValueError):
    """Mapped to INVALID_ARGUMENT by libs.rpc."""


def _attempt_to_pb(row: dict[str, Any]) -> webhooks_pb2.DeliveryAttempt:
    message = webhooks_pb2.DeliveryAttempt(
        id=str(row["event_id"]),
        prediction_id=row["prediction_id"],
        webhook_id=webhook_id(str(row["delivery_id"])),
        webhook_event=row["webhook_event"],
        url=row["url"],
        latency_ms=row["latency_ms"],
        error=row["error"] or "",
        attempt=row["attempt"],
        outcome=row["outcome"],
        attempted_at=row["attempted_at"].isoformat(),
    )
    if row["status_code"] is not None:
        message.status_code = row["status_code"]
    return message


class WebhooksServicer(webhooks_pb2_grpc.WebhooksServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def GetSigningSecret(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        if not request.account:
            raise InvalidRequest("account is required")
        return webhooks_pb2.SigningSecret(key=await self._deps.secrets.get_or_create(request.account))

    async def ListDeliveryAttempts(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        rows = await self._deps.queries.list_attempts(request.prediction_id, request.account)
        return webhooks_pb2.ListDeliveryAttemptsResponse(attempts=[_attempt_to_pb(row) for row in rows])

    async def GetDeliverySummary(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        if not 1 <= request.hours <= MAX_SUMMARY_HOURS:
            raise InvalidRequest(f"hours must be between 1 and {MAX_SUMMARY_HOURS}")
        summary = await self._deps.queries.summary(request.account, request.hours)
        return webhooks_pb2.DeliverySummary(
            hours=summary["hours"],
            attempts=summary["attempts"],
            delivered=summary["delivered"],
            failed=summary["failed"],
            retried=summary["retried"],
            latency_p50_ms=summary["latency_p50_ms"],
            latency_p99_ms=summary["latency_p99_ms"],
            events=[webhooks_pb2.EventSummary(**event) for event in summary["events"]],
        )


def register(server: grpc.aio.Server, deps: Deps) -> str:
    webhooks_pb2_grpc.add_WebhooksServiceServicer_to_server(WebhooksServicer(deps), server)
    return webhooks_pb2.DESCRIPTOR.services_by_name["WebhooksService"].full_name
