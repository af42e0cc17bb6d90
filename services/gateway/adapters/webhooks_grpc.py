"""Webhook dispatcher calls over gRPC (`cogwheel.webhooks.v1`), translated to plain dicts."""

from __future__ import annotations

from typing import Any

import grpc

from libs.pb.cogwheel.webhooks.v1 import webhooks_pb2, webhooks_pb2_grpc


def _attempt(message: webhooks_pb2.DeliveryAttempt) -> dict[str, Any]:
    return {
        "id": message.id,
        "webhook_id": message.webhook_id,
        "event": message.webhook_event,
        "url": message.url,
        "attempt": message.attempt,
        "status_code": message.status_code if message.HasField("status_code") else None,
        "latency_ms": message.latency_ms,
        "error": message.error or None,
        "outcome": message.outcome,
        "attempted_at": message.attempted_at,
    }


class GrpcWebhooksClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = webhooks_pb2_grpc.WebhooksServiceStub(channel)

    async def signing_secret(self, account: str) -> str:
        reply = await self._stub.GetSigningSecret(webhooks_pb2.GetSigningSecretRequest(account=account))
        return reply.key

    async def delivery_attempts(self, prediction_id: str, account: str) -> list[dict[str, Any]]:
        reply = await self._stub.ListDeliveryAttempts(
            webhooks_pb2.ListDeliveryAttemptsRequest(prediction_id=prediction_id, account=account)
        )
        return [_attempt(attempt) for attempt in reply.attempts]

    async def summary(self, account: str, hours: int) -> dict[str, Any]:
        reply = await self._stub.GetDeliverySummary(
            webhooks_pb2.GetDeliverySummaryRequest(account=account, hours=hours)
        )
        return {
            "hours": reply.hours,
            "attempts": reply.attempts,
            "delivered": reply.delivered,
            "failed": reply.failed,
            "retried": reply.retried,
            "latency_ms": {"p50": reply.latency_p50_ms, "p99": reply.latency_p99_ms},
            "events": {
                event.webhook_event: {
                    "attempts": event.attempts,
                    "delivered": event.delivered,
                    "failed": event.failed,
                    "retried": event.retried,
                }
                for event in reply.events
            },
        }
