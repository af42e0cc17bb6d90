"""gRPC servicer: translates scheduler.v1 messages to commands and back."""

from __future__ import annotations

import json

import grpc
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from libs.pb.cogwheel.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from services.scheduler import handlers
from services.scheduler.bootstrap import Deps
from services.scheduler.domain.errors import InvalidPredictionRequest, QueueUnavailable
from services.scheduler.domain.prediction import Prediction


def _database_unreachable(exc: BaseException) -> bool:
    """The database is down or the connection broke: the create is refused as unavailable (retry later)."""
    if isinstance(exc, OSError | OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def to_pb(prediction: Prediction) -> scheduler_pb2.Prediction:
    message = scheduler_pb2.Prediction(
        id=prediction.id,
        model=prediction.model,
        version=prediction.version_id,
        input_json=json.dumps(prediction.input),
        output_json=json.dumps(prediction.output),
        logs=prediction.logs or "",
        error=prediction.error or "",
        status=prediction.status,
        created_at=prediction.created_at or "",
        started_at=prediction.started_at or "",
        completed_at=prediction.completed_at or "",
        webhook=prediction.webhook or "",
        webhook_events_filter=prediction.webhook_events_filter or [],
        account=prediction.account,
        source=prediction.source,
        stream=prediction.stream,
        deadline=prediction.deadline or "",
        deployment=prediction.deployment or "",
        stream_token=prediction.stream_token or "",
        data_removed=prediction.data_removed,
    )
    if prediction.predict_time is not None:
        message.predict_time = prediction.predict_time
    return message


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServiceServicer):
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def CreatePrediction(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        try:
            payload = json.loads(request.input_json or "{}")
        except json.JSONDecodeError as exc:
            raise InvalidPredictionRequest(f"input is not valid JSON: {exc}") from exc
        command = handlers.CreatePrediction(
            version_id=request.version_id,
            input=payload,
            account=request.account,
            webhook=request.webhook or None,
            webhook_events_filter=list(request.webhook_events_filter) or None,
            source=request.source or "api",
            cancel_after_seconds=(
                request.cancel_after_seconds if request.HasField("cancel_after_seconds") else None
            ),
            deployment=request.deployment or None,
            hardware=request.hardware or None,
            idempotency_key=request.idempotency_key or None,
            request_fingerprint=request.request_fingerprint,
        )
        try:
            prediction, replayed = await handlers.create_prediction_once(
                command,
                store=self._deps.store,
                registry=self._deps.registry,
                clock=self._deps.clock,
                hardware_catalog=self._deps.hardware,
                secrets_key=self._deps.secrets_key,
                queue_open=lambda: self._deps.bus.nc.is_connected,
            )
        except (DBAPIError, OSError) as exc:
            if not _database_unreachable(exc):
                raise
            raise QueueUnavailable(f"predictions cannot be stored right now: {type(exc).__name__}") from exc
        message = to_pb(prediction)
        message.idempotent_replay = replayed
        return message

    async def GetPrediction(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        return to_pb(await handlers.get_prediction(request.id, store=self._deps.store, js=self._deps.bus.js))

    async def CancelPrediction(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        prediction = await handlers.cancel_prediction(
            request.id, store=self._deps.store, clock=self._deps.clock, runners=self._deps.runners,
            js=self._deps.bus.js,
            retention_seconds=self._deps.settings.prediction_retention_seconds,
        )
        return to_pb(prediction)

    async def ListPredictionEvents(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        events = await handlers.list_prediction_events(request.id, store=self._deps.store)
        return scheduler_pb2.ListPredictionEventsResponse(
            events=[
                scheduler_pb2.EventRecord(
                    id=event.id,
                    type=event.type,
                    schema_version=event.schema_version,
                    stream_id=event.stream_id,
                    stream_version=event.stream_version,
                    position=event.position or 0,
                    occurred_at=event.occurred_at.isoformat(),
                    data_json=json.dumps(event.data),
                    metadata_json=event.metadata.model_dump_json(),
                )
                for event in events
            ]
        )


def register(server: grpc.aio.Server, deps: Deps) -> str:
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(SchedulerServicer(deps), server)
    return scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name
