"""Scheduler calls over gRPC, translated to plain views."""

from __future__ import annotations

import json
from typing import Any

import grpc

from libs.pb.cogwheel.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc


def view_from_pb(message: scheduler_pb2.Prediction) -> dict[str, Any]:
    return {
        "id": message.id,
        "model": message.model,
        "version": message.version,
        "input": json.loads(message.input_json or "{}"),
        "output": json.loads(message.output_json) if message.output_json else None,
        "logs": message.logs,
        "error": message.error or None,
        "status": message.status,
        "created_at": message.created_at,
        "started_at": message.started_at or None,
        "completed_at": message.completed_at or None,
        "predict_time": message.predict_time if message.HasField("predict_time") else None,
        "source": message.source or "api",
        "webhook": message.webhook or None,
        "webhook_events_filter": list(message.webhook_events_filter) or None,
        "account": message.account,
        "stream": message.stream,
        "deadline": message.deadline or None,
        "deployment": message.deployment or None,
        "stream_token": message.stream_token or None,
        "data_removed": message.data_removed,
    }


class GrpcSchedulerClient:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = scheduler_pb2_grpc.SchedulerServiceStub(channel)
        # Served on the same port: what the scheduler knows of model instances (not of predictions).
        self._admin = scheduler_pb2_grpc.SchedulerAdminServiceStub(channel)

    async def create_prediction(
        self,
        *,
        version_id: str,
        input: dict[str, Any],
        account: str,
        webhook: str | None,
        webhook_events_filter: list[str] | None,
        cancel_after_seconds: float | None = None,
        deployment: str | None = None,
        hardware: str | None = None,
        idempotency_key: str | None = None,
        request_fingerprint: str = "",
        source: str = "api",
    ) -> dict[str, Any]:
        """The created prediction's view; with `idempotency_key`, `idempotent_replay` says it was created before."""
        request = scheduler_pb2.CreatePredictionRequest(
            version_id=version_id,
            input_json=json.dumps(input),
            account=account,
            webhook=webhook or "",
            webhook_events_filter=webhook_events_filter or [],
            source=source,
            deployment=deployment or "",
            hardware=hardware or "",
        )
        if cancel_after_seconds is not None:
            request.cancel_after_seconds = cancel_after_seconds
        if idempotency_key:
            request.idempotency_key = idempotency_key
            request.request_fingerprint = request_fingerprint
        reply = await self._stub.CreatePrediction(request)
        return {**view_from_pb(reply), "idempotent_replay": reply.idempotent_replay}

    async def get_prediction(self, prediction_id: str) -> dict[str, Any]:
        return view_from_pb(await self._stub.GetPrediction(scheduler_pb2.GetPredictionRequest(id=prediction_id)))

    async def cancel_prediction(self, prediction_id: str) -> dict[str, Any]:
        reply = await self._stub.CancelPrediction(scheduler_pb2.CancelPredictionRequest(id=prediction_id))
        return view_from_pb(reply)

    async def list_events(self, prediction_id: str) -> list[dict[str, Any]]:
        reply = await self._stub.ListPredictionEvents(
            scheduler_pb2.ListPredictionEventsRequest(id=prediction_id)
        )
        return [
            {
                "id": record.id,
                "type": record.type,
                "schema_version": record.schema_version,
                "stream_id": record.stream_id,
                "stream_version": record.stream_version,
                "position": record.position,
                "occurred_at": record.occurred_at,
                "data": json.loads(record.data_json),
                "metadata": json.loads(record.metadata_json),
            }
            for record in reply.events
        ]

    async def online_instances(self, deployment: str) -> list[dict[str, Any]]:
        """The live instances (booting, ready or stopping) serving the deployment `owner/name`, any release."""
        reply = await self._admin.ListInstances(scheduler_pb2.ListInstancesRequest())
        return [{"id": i.id, "state": i.state, "node": i.node, "version": i.version}
                for i in reply.instances if i.deployment == deployment]
