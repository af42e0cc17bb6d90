"""gRPC servicer: translates scheduler.v1 messages to commands and back."""

from __future__ import annotations

import asyncio
import json
import logging

import grpc
import psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from libs.bus.subjects import queue_key
from libs.pb.cogwheel.scheduler.v1 import scheduler_pb2, scheduler_pb2_grpc
from libs.predictions import PredictionStatus
from libs.rpc import RpcUnavailable
from services.scheduler import handlers
from services.scheduler.adapters import work_postgres as work
from services.scheduler.bootstrap import Deps, fair_share_policy
from services.scheduler.domain.errors import InvalidPredictionRequest, QueueUnavailable
from services.scheduler.domain.prediction import Prediction

log = logging.getLogger(__name__)
_background: set[asyncio.Task[None]] = set()


def _database_unreachable(exc: BaseException) -> bool:
    """The database is down or the connection broke: the create is refused as unavailable (retry later)."""
    if isinstance(exc, OSError | OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError):
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
        status=str(prediction.status or ""),
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
                fair_share_policy=fair_share_policy(self._deps.settings),
                recent_loads=self._deps.recent_loads,
            )
        except (DBAPIError, psycopg.Error, OSError) as exc:
            if not _database_unreachable(exc):
                raise
            raise QueueUnavailable(f"predictions cannot be stored right now: {type(exc).__name__}") from exc
        except RpcUnavailable as exc:
            # No registry answered within the call's deadline: the client may retry (503 with Retry-After).
            raise QueueUnavailable("the model registry is not reachable right now") from exc
        controller = self._deps.controller
        if not replayed and controller is not None:
            controller.created(queue_key(prediction.version_id, prediction.deployment))
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
        queued = prediction.status == PredictionStatus.CANCELED and prediction.started_at is None
        if queued and self._deps.controller is not None:
            # Canceled while queued: its job leaves the queue (in the background: the queue may be long).
            task = asyncio.create_task(self._discard_job(prediction))
            _background.add(task)
            task.add_done_callback(_background.discard)
        return to_pb(prediction)

    async def _discard_job(self, prediction: Prediction) -> None:
        assert self._deps.controller is not None
        try:
            label = self._deps.hardware.runner_label(prediction.hardware)
            queue = queue_key(prediction.version_id, prediction.deployment)
            await self._deps.controller.queues.discard(label, queue, {prediction.id})
        except Exception:  # noqa: BLE001 - a job left behind is skipped by the runners (they heard the cancel)
            log.warning("could not remove the job of canceled prediction %s", prediction.id, exc_info=True)

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


class SchedulerAdminServicer(scheduler_pb2_grpc.SchedulerAdminServiceServicer):
    """Nodes, instances and queues as the scheduler sees them; drain a node, scale a deployment."""

    def __init__(self, deps: Deps) -> None:
        self._deps = deps
        assert deps.controller is not None
        self._controller = deps.controller

    async def ListNodes(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        await self._controller.catch_up()
        nodes = await self._controller.nodes.live_nodes()
        live = [i for i in self._controller.instances.values() if i.live]
        reply = scheduler_pb2.ListNodesResponse()
        for node in sorted(nodes, key=lambda n: n.runner_id):
            mine = [i for i in live if i.node == node.runner_id]
            reply.nodes.append(scheduler_pb2.Node(
                id=node.runner_id, hardware=node.label, slots=node.slots, gpu_memory_mib=node.gpu_memory_mib,
                gpu_memory_used_mib=sum(i.gpu_memory_mib for i in mine), instances=[i.id for i in mine],
                draining=node.draining or node.runner_id in self._controller.draining,
                updated_at=node.updated_at.isoformat(),
            ))
        return reply

    async def ListInstances(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        await self._controller.catch_up()
        nodes = {n.runner_id: n for n in await self._controller.nodes.live_nodes()}
        reply = scheduler_pb2.ListInstancesResponse()
        for instance in sorted(self._controller.instances.values(), key=lambda i: i.requested_at or i.since):
            if not instance.live and not request.include_ended:
                continue
            seen = nodes[instance.node].instances.get(instance.id, {}) if instance.node in nodes else {}
            reply.instances.append(scheduler_pb2.Instance(
                id=instance.id, queue=instance.queue, version=instance.model_version,
                deployment=instance.deployment or "", node=instance.node, state=instance.state,
                since=instance.since.isoformat() if instance.since else "",
                predictions_served=int(seen.get("served") or 0), boot_time=instance.boot_time or 0.0,
                gpu_memory_mib=instance.gpu_memory_mib, reason=instance.reason,
            ))
        return reply

    async def ListQueues(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        self._controller.last_work = await work.all_work(self._deps.store)
        reply = scheduler_pb2.ListQueuesResponse()
        for entry in self._controller.queue_stats(self._deps.clock.now()):
            reply.queues.append(scheduler_pb2.Queue(
                label=entry["label"], queue=entry["queue"], deployment=entry["deployment"] or "",
                waiting=entry["waiting"], running=entry["running"], oldest_age_seconds=entry["oldest_age"],
            ))
        return reply

    async def DrainNode(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        if not request.node:
            raise InvalidPredictionRequest("node is required")
        await self._controller.drain_node(request.node, undo=request.undo)
        return scheduler_pb2.DrainNodeResponse()

    async def ScaleDeployment(self, request, context):  # type: ignore[no-untyped-def]  # noqa: N802
        bounds = {field: getattr(request, field) if request.HasField(field) else None
                  for field in ("min_instances", "max_instances")}
        if all(value is None for value in bounds.values()):
            raise InvalidPredictionRequest("give min_instances, max_instances or both")
        scaled = await self._deps.registry.scale_deployment(request.owner, request.name, **bounds)  # type: ignore[attr-defined]
        self._controller.refresh_deployments()
        return scheduler_pb2.ScaleDeploymentResponse(min_instances=scaled.min_instances,
                                                     max_instances=scaled.max_instances)


def register(server: grpc.aio.Server, deps: Deps) -> str:
    scheduler_pb2_grpc.add_SchedulerServiceServicer_to_server(SchedulerServicer(deps), server)
    scheduler_pb2_grpc.add_SchedulerAdminServiceServicer_to_server(SchedulerAdminServicer(deps), server)
    return scheduler_pb2.DESCRIPTOR.services_by_name["SchedulerService"].full_name
