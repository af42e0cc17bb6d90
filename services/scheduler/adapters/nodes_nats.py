"""Runner nodes over NATS: their heartbeats (KV `cogwheel-runners`), their commands, their job queues."""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import BucketNotFoundError, NoKeysError, NotFoundError

from libs.bus.nats import Bus
from libs.bus.subjects import RUNNER_JOBS, RUNNERS_BUCKET, runner_node_commands, runner_queue, runner_queue_durable
from services.scheduler.ports import NodeReport

log = logging.getLogger(__name__)


def _time(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_heartbeat(key: str, raw: bytes) -> NodeReport | None:
    try:
        beat = json.loads(raw)
        instances = {
            str(item["id"]): item for item in beat.get("instances") or [] if isinstance(item, dict) and "id" in item
        }
        return NodeReport(
            runner_id=str(beat["runner_id"]), key=key, label=str(beat.get("hardware") or "cpu"),
            slots=int(beat.get("node_slots") or 0), gpu_memory_mib=int(beat.get("gpu_memory_mib") or 0),
            updated_at=_time(beat.get("updated_at")), draining=bool(beat.get("draining")), instances=instances,
        )
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring unreadable heartbeat of %s", key)
        return None


class NatsNodeDirectory:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._kv: Any = None

    async def live_nodes(self) -> list[NodeReport]:
        try:
            self._kv = self._kv or await self._bus.js.key_value(RUNNERS_BUCKET)
        except (BucketNotFoundError, NotFoundError):
            return []
        try:
            keys = await self._kv.keys()
        except NoKeysError:
            return []
        nodes = []
        for key in keys:
            with contextlib.suppress(NotFoundError):
                entry = await self._kv.get(key)
                if entry.value:
                    node = parse_heartbeat(key, entry.value)
                    # Nodes of an older runner (no `node_slots`) take no scheduled instances.
                    if node is not None and node.slots > 0:
                        nodes.append(node)
        return nodes


class NatsNodeCommands:
    def __init__(self, bus: Bus, timeout: float = 5.0) -> None:
        self._bus, self._timeout = bus, timeout

    async def _request(self, node_key: str, command: dict[str, Any]) -> bool:
        try:
            reply = await self._bus.nc.request(runner_node_commands(node_key), json.dumps(command).encode(),
                                               timeout=self._timeout)
        except (NatsTimeoutError, NoRespondersError, TimeoutError):
            return False
        try:
            return bool(json.loads(reply.data).get("ok"))
        except ValueError:
            return False

    async def load(self, node_key: str, command: dict[str, Any]) -> bool:
        return await self._request(node_key, {"op": "load", **command})

    async def unload(self, node_key: str, instance_id: str, reason: str) -> bool:
        return await self._request(node_key, {"op": "unload", "instance_id": instance_id, "reason": reason})


class NatsJobQueues:
    """Each queue's durable pull consumer on the RUNNER_JOBS work queue, made by the scheduler (runners
    may not create consumers); its ack wait is how long a dead node's unacknowledged job waits."""

    def __init__(self, bus: Bus, *, ack_wait: float, max_deliver: int) -> None:
        self._bus, self._ack_wait, self._max_deliver = bus, ack_wait, max_deliver
        self._ensured: set[str] = set()

    async def ensure(self, label: str, queue: str) -> tuple[str, str]:
        subject, durable = runner_queue(label, queue), runner_queue_durable(label, queue)
        if durable not in self._ensured:
            config = ConsumerConfig(
                durable_name=durable, name=durable, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                ack_wait=self._ack_wait, max_ack_pending=1024, filter_subject=subject, max_deliver=self._max_deliver,
            )
            await self._bus.js.add_consumer(RUNNER_JOBS.name, config=config)
            self._ensured.add(durable)
        return subject, durable

    async def discard(self, label: str, queue: str, prediction_ids: set[str]) -> int:
        """Delete the queued jobs of these predictions (found by the prediction id they were published with)."""
        if not prediction_ids:
            return 0
        subject = runner_queue(label, queue)
        removed, seq = 0, 0
        for _ in range(10_000):
            try:
                message = await self._bus.js.get_msg(RUNNER_JOBS.name, seq=seq + 1, subject=subject, next=True)
            except NotFoundError:
                break
            assert message.seq is not None  # JetStream returns every stored message with its sequence
            seq = message.seq
            msg_id = (message.headers or {}).get("Nats-Msg-Id")
            if msg_id in prediction_ids:
                with contextlib.suppress(NotFoundError):
                    await self._bus.js.delete_msg(RUNNER_JOBS.name, seq)
                    removed += 1
        return removed
