"""Application layer of instances: the control loop that carries out placement decisions, and node reports.

One scheduler process at a time (the holder of a PostgreSQL advisory lock) runs `Controller.tick` about
every `control_interval` seconds. A tick folds the new `instance-*` events of the log into its state, reads
the live nodes (heartbeats) and the `work` table (what waits and what runs, per queue), asks
`domain.placement.plan` what to do, records each decision as an instance event, then commands the nodes.
Commands are core NATS requests; one that gets no answer is sent again on a later tick (nodes treat
repeats as no-ops), so a decision once recorded is carried out. A restarted scheduler folds the log and
carries on where the last one stopped.

Node reports (`runner.events.instance.*`) are recorded by whichever scheduler process receives them
(`record_instance_report`); the controller picks them up from the log on its next tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from libs.bus.consumer import Retry
from libs.bus.subjects import SCHEDULER_INSTANCE_EVENTS_DURABLE, queue_key
from libs.events import Envelope, EventMetadata, new_event
from libs.eventstore import EventStore
from libs.eventstore.retry import retry_on_conflict
from libs.hardware import HardwareCatalog
from libs.predictions import PredictionStatus
from services.scheduler.adapters import work_postgres as work
from services.scheduler.domain import fair_share, placement
from services.scheduler.domain import instance as inst
from services.scheduler.domain import prediction as model
from services.scheduler.handlers import DEFAULT_RETENTION_SECONDS, end_work, release_held_turns
from services.scheduler.ports import (
    Clock,
    DeploymentDirectory,
    DeploymentInfo,
    JobQueues,
    NodeCommands,
    NodeDirectory,
    NodeReport,
    RunnerControl,
)

log = logging.getLogger(__name__)

INSTANCE_EVENTS_CONSUMER = SCHEDULER_INSTANCE_EVENTS_DURABLE
# Boot phases as the prediction's logs tell them.
PHASE_LINES = {
    "fetching": "Booting: fetching the package",
    "environment": "Booting: building the environment",
    "setup": "Booting: running setup()",
}
HELD_LINE = ("Waiting for a turn: this model is busy and your account already has its share of its queue; "
             "the predictions of every account waiting for it are taken in turn (fair share)\n")
# How many waiting predictions of one queue are told about their wait on one tick.
TOLD_PER_QUEUE = 200
# A prediction queued behind a ready instance is told its place only after waiting this long.
QUEUED_LINE_AFTER_SECONDS = 2.0


@dataclass(frozen=True)
class ControlSettings:
    policy: placement.Policy = placement.Policy()
    fair_share: fair_share.FairSharePolicy = fair_share.FairSharePolicy()
    # A prediction whose hardware no node offers fails after this long.
    no_hardware_timeout: float = 600.0
    # The scheduler's own limit on a running prediction (the node's `predict_timeout`), plus a grace.
    predict_timeout: float = 1800.0
    predict_timeout_grace: float = 60.0
    # A command that got no answer (or no report since) is sent again after this long.
    resend_after: float = 5.0
    deployments_refresh: float = 5.0
    # A node missing from the heartbeat bucket this long is lost (its entry expires three beats after the last).
    node_lost_after: float = 10.0
    # An API prediction's input, output and logs are removed this long after it ends.
    retention_seconds: float = DEFAULT_RETENTION_SECONDS


@dataclass
class Metrics:
    cold_boots: int = 0
    boot_seconds: list[float] = field(default_factory=list)
    predictions_ended: Counter[str] = field(default_factory=Counter)


def _metadata(correlation_id: str, actor: str = "scheduler") -> EventMetadata:
    return EventMetadata(correlation_id=correlation_id, actor=actor)


class Controller:
    def __init__(
        self,
        *,
        store: EventStore,
        clock: Clock,
        nodes: NodeDirectory,
        commands: NodeCommands,
        queues: JobQueues,
        deployments: DeploymentDirectory,
        runners: RunnerControl,
        catalog: HardwareCatalog,
        settings: ControlSettings = ControlSettings(),
        registry: Any = None,
    ) -> None:
        self.store, self.clock, self.nodes, self.commands = store, clock, nodes, commands
        self.queues, self.deployment_directory, self.runners = queues, deployments, runners
        self.catalog, self.settings, self.registry = catalog, settings, registry
        self.instances: dict[str, inst.Instance] = {}
        self._position = 0
        self._sent: dict[str, float] = {}
        self._deployments: list[DeploymentInfo] = []
        self._deployments_at = -math.inf
        self.version_memory: dict[str, int] = {}
        self.metrics = Metrics()
        self.last_nodes: list[NodeReport] = []
        self.last_work: list[work.WorkItem] = []
        self.draining: set[str] = set()
        # Queues (and versions) whose latest boots failed in a row, as of the last tick.
        self.boot_backoff: dict[tuple[str, str], inst.BootBackoff] = {}
        self._known_nodes: dict[str, tuple[NodeReport, float]] = {}
        # Set when this process created a prediction: the control loop ticks at once instead of at its interval.
        self.wakeup = asyncio.Event()

    def created(self, queue: str) -> None:
        """A prediction was created for `queue`: tick at once when no instance of it is ready (it may need a cold
        boot now, not at the next interval); behind a ready instance the job is simply taken, and a tick for
        every prediction would only cost the hot path."""
        if not any(instance.queue == queue and instance.state == "ready" for instance in self.instances.values()):
            self.wakeup.set()

    # --- state ----------------------------------------------------------------------------------------

    async def catch_up(self) -> None:
        """Fold the instance events recorded since the last tick (by this process or another)."""
        while events := await work.instance_events(self.store, self._position):
            for event in events:
                self._fold(event)
                self._position = max(self._position, event.position or 0)

    def _fold(self, event: Envelope) -> None:
        if event.stream_id.startswith("node-"):
            node = str(event.data.get("node") or "")
            if event.type == "node.drained":
                self.draining.add(node)
            elif event.type == "node.undrained":
                self.draining.discard(node)
            return
        instance_id = event.stream_id.removeprefix("instance-")
        before = self.instances.get(instance_id, inst.Instance(id=instance_id))
        if event.stream_version <= before.version:
            return
        after = inst.evolve(before, event)
        self.instances[instance_id] = after
        if after.gpu_memory_mib:
            self.version_memory[after.model_version] = max(
                self.version_memory.get(after.model_version, 0), after.gpu_memory_mib)
        if after.state == "ready" and before.state != "ready" and after.boot_time is not None:
            self.metrics.cold_boots += 1
            self.metrics.boot_seconds.append(after.boot_time)
            del self.metrics.boot_seconds[:-1000]
        if after.state in inst.ENDED:
            self._sent.pop(instance_id, None)

    async def _append(self, instance_id: str, events: list[Envelope]) -> None:
        if not events:
            return
        state = self.instances.get(instance_id, inst.Instance(id=instance_id))
        async with self.store.transaction() as tx:
            stored = await tx.append(inst.stream_id(instance_id), events, expected_version=state.version)
        for event in stored:
            self._fold(event)

    async def _deployment_specs(self) -> list[placement.DeploymentSpec]:
        now = time.monotonic()
        if now - self._deployments_at >= self.settings.deployments_refresh:
            self._deployments_at = now
            try:
                self._deployments = await self.deployment_directory.deployments()
            except Exception:  # noqa: BLE001 - the last known deployments stay in force meanwhile
                log.warning("cannot list deployments; keeping the last known ones", exc_info=True)
        specs = []
        for deployment in self._deployments:
            try:
                label = self.catalog.runner_label(deployment.hardware)
            except Exception:  # noqa: BLE001 - a SKU removed from the catalogue: nothing can host it
                continue
            specs.append(placement.DeploymentSpec(
                deployment.name, queue_key(deployment.model_version, deployment.name), label,
                deployment.model_version, deployment.min_instances, deployment.max_instances,
            ))
        return specs

    # --- one tick -------------------------------------------------------------------------------------

    async def tick(self) -> placement.Plan:
        await self.catch_up()
        now = self.clock.now()
        nodes = self._remembered(await self.nodes.live_nodes())
        items = await work.all_work(self.store)
        self.last_nodes, self.last_work = nodes, items
        by_id = {node.runner_id: node for node in nodes}
        policy = self.settings.policy
        self.boot_backoff = inst.boot_backoff(self.instances.values(), base=policy.boot_backoff_base,
                                              cap=policy.boot_backoff_max)
        world = placement.World(
            nodes=[placement.Node(n.runner_id, n.label, n.slots, n.gpu_memory_mib,
                                  n.draining or n.runner_id in self.draining) for n in nodes],
            instances=self._views(by_id, items),
            queues=_demands(items),
            deployments=await self._deployment_specs(),
            version_memory=dict(self.version_memory),
            boot_not_before={key: backoff.not_before for key, backoff in self.boot_backoff.items()},
        )
        decided = placement.plan(world, now, policy)
        for give_up in decided.give_ups:
            await self._give_up(give_up.instance, give_up.reason, now, node_alive=give_up_node_alive(
                self.instances[give_up.instance], by_id))
        for stop in decided.stops:
            await self._append(stop.instance, inst.decide_stop(
                self.instances[stop.instance], reason=stop.reason, at=now, metadata=_metadata(stop.instance)))
            log.info("instance %s stopping: %s", stop.instance, stop.reason)
        for start in decided.starts:
            instance_id = inst.new_instance_id()
            await self._append(instance_id, inst.decide_request(
                instance_id, queue=start.queue, label=start.label, model_version=start.model_version,
                deployment=start.deployment, node=start.node, gpu_memory_mib=start.gpu_memory_mib, at=now,
                metadata=_metadata(instance_id),
            ))
            log.info("instance %s of %s (%s) placed on %s: %s", instance_id, start.queue, start.model_version[:12],
                     start.node, start.reason)
        # Predictions hear of their cold boot before the node is commanded (and reports its first phase).
        await self._tell_waiting(items, decided, by_id, now)
        await self._command(by_id, now)
        await self._fail_lost_predictions(items, by_id, now)
        await self._release_held({item.queue for item in items if item.held})
        return decided

    async def _release_held(self, queues: set[str]) -> None:
        """Publish the held jobs whose turn has come (fair share), each queue in one transaction."""
        for queue in sorted(queues):
            async with self.store.transaction() as tx:
                await tx.conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                turns = await release_held_turns(tx, self.store.schema, queue, self.settings.fair_share)
            if turns:
                log.info("queue %s: %d held job(s) released in turn", queue, len(turns))

    async def _give_up(self, instance_id: str, reason: str, now: datetime, *, node_alive: bool) -> None:
        """The instance is failed. What it had started fails naming its node (a prediction is never run twice):
        here when the node is alive (it restarted, so the instance is gone), else in `_fail_lost_predictions`
        once the node is lost. What it had taken but not started goes back to the queue by itself: JetStream
        hands the unacknowledged job to another instance after its ack wait."""
        instance = self.instances[instance_id]
        await self._append(instance_id, inst.decide_fail(
            instance, reason=reason, at=now, metadata=_metadata(instance_id)))
        log.info("instance %s given up: %s", instance_id, reason)
        if node_alive:
            started = [item for item in await work.all_work(self.store)
                       if item.instance == instance_id and item.started_at is not None]
            for item in started:
                await self._fail_lost(item, now, why=" (it restarted)")

    async def _fail_lost(self, item: work.WorkItem, now: datetime, *, why: str = "") -> None:
        """A started prediction whose node was lost fails naming it; its job, should it come back, is dropped."""
        await self.fail_prediction(item.prediction_id, model.lost_node_error(item.node or "", why), now)
        await self.queues.discard(item.label, item.queue, {item.prediction_id})
        # A run of it that began elsewhere meanwhile (its job came back before the node was declared lost) stops.
        await self.runners.request_cancel(item.prediction_id)

    def _remembered(self, listed: list[NodeReport]) -> list[NodeReport]:
        """The nodes listed now, and those missing from this one listing but seen within `node_lost_after`:
        a listing of the bucket can come back short under load, and one short read must not lose a node."""
        moment = time.monotonic()
        for node in listed:
            self._known_nodes[node.runner_id] = (node, moment)
        for runner_id, (_, seen) in list(self._known_nodes.items()):
            if moment - seen > self.settings.node_lost_after:
                del self._known_nodes[runner_id]
        return [node for node, _ in self._known_nodes.values()]

    def _views(self, nodes: dict[str, NodeReport], items: list[work.WorkItem]) -> list[placement.InstanceView]:
        busy = Counter(item.instance for item in items if item.started_at is not None and item.instance)
        views = []
        for instance in self.instances.values():
            if not instance.live:
                continue
            reported = nodes.get(instance.node)
            seen = (reported.instances.get(instance.id) if reported else None) or {}
            last_used = _parse(seen.get("last_used")) or instance.ready_at or instance.since
            views.append(placement.InstanceView(
                id=instance.id, queue=instance.queue, label=instance.label, model_version=instance.model_version,
                node=instance.node, state=instance.state if instance.state != "stopping" else "stopping",
                since=instance.since or self.clock.now(), slots=instance.slots,
                busy=max(busy[instance.id], int(seen.get("busy") or 0)), gpu_memory_mib=instance.gpu_memory_mib
                or self.version_memory.get(instance.model_version, 0),
                last_used=last_used, deployment=instance.deployment,
            ))
        return views

    async def _command(self, nodes: dict[str, NodeReport], now: datetime) -> None:
        """Send what each live instance's node must do, again when the last send got no result yet."""
        monotonic = time.monotonic()
        for instance in list(self.instances.values()):
            node = nodes.get(instance.node)
            if not instance.live or node is None:
                continue
            reported = node.instances.get(instance.id)
            if instance.state in {"booting", "ready"} and reported is None and \
                    node.updated_at > (instance.since or now) + timedelta(seconds=self.settings.resend_after * 2):
                await self._give_up(instance.id, f"node {node.runner_id} no longer runs it (it restarted)", now,
                                    node_alive=True)
                continue
            due = monotonic - self._sent.get(instance.id, -math.inf) >= self.settings.resend_after
            if instance.state == "placed" and due:
                subject, durable = await self.queues.ensure(instance.label, instance.queue)
                command = {"instance_id": instance.id, "version_id": instance.model_version,
                           "queue": instance.queue, "subject": subject, "durable": durable,
                           "gpu_memory_mib": instance.gpu_memory_mib}
                command.update(await self._package(instance.model_version))
                self._sent[instance.id] = monotonic
                if not await self.commands.load(node.key, command):
                    log.warning("node %s did not take instance %s yet; asking again", node.runner_id, instance.id)
            elif instance.state == "stopping" and due:
                self._sent[instance.id] = monotonic
                await self.commands.unload(node.key, instance.id, instance.reason)
        # What a node runs that the scheduler does not want (a command it missed, an instance it forgot).
        for node in nodes.values():
            for instance_id in node.instances:
                known = self.instances.get(instance_id)
                if (known is None or not known.live) and monotonic - self._sent.get(instance_id, -math.inf) >= \
                        self.settings.resend_after:
                    self._sent[instance_id] = monotonic
                    await self.commands.unload(node.key, instance_id, "not wanted by the scheduler")

    async def _package(self, version_id: str) -> dict[str, Any]:
        if self.registry is None:
            return {}
        try:
            version = await self.registry.get_version(version_id)
        except Exception:  # noqa: BLE001 - the node reads the package's cog.yaml itself
            return {}
        return {"package_key": version.package_key, "predictor_ref": version.predictor_ref}

    async def _fail_lost_predictions(self, items: list[work.WorkItem], nodes: dict[str, NodeReport],
                                     now: datetime) -> None:
        """Started predictions whose node is gone fail naming it (they are not run again); those past the time
        limit fail too.

        Predictions a lost node had taken but not started go back to their queue by themselves: JetStream
        hands an unacknowledged job to another instance after its ack wait.
        """
        limit = timedelta(seconds=self.settings.predict_timeout + self.settings.predict_timeout_grace)
        for item in items:
            if item.started_at is None:
                continue
            if item.node and item.node not in nodes and _node_known_gone(item, self.instances):
                await self._fail_lost(item, now, why=" (it stopped sending heartbeats)")
            elif now - item.started_at > limit:
                await self.fail_prediction(
                    item.prediction_id,
                    f"Prediction timed out after {self.settings.predict_timeout:g} seconds (enforced by the scheduler)",
                    now)
                await self.runners.request_cancel(item.prediction_id)

    async def fail_prediction(self, prediction_id: str, error: str, now: datetime) -> None:
        async def attempt() -> None:
            async with self.store.transaction() as tx:
                await tx.conn.execute(text("SET LOCAL lock_timeout = '5s'"))
                history = await tx.read_stream(model.stream_id(prediction_id))
                if not history:
                    await work.remove(tx.conn, self.store.schema, prediction_id)
                    return
                state = model.load(prediction_id, history)
                events = model.decide_complete(
                    state, status=PredictionStatus.FAILED, output=state.output,
                    logs=state.logs[len(state.waiting_logs):],
                    error=error, started_at=state.started_at, completed_at=now.isoformat(), predict_time=None,
                    runner_id="", metadata=_metadata(prediction_id),
                )
                if events:
                    await tx.append(model.stream_id(prediction_id), events, expected_version=state.stream_version)
                # Its deadline and its data's removal follow as for any end; a held job may take its place.
                await end_work(tx, self.store, state, events, self.settings.retention_seconds,
                               self.settings.fair_share)

        await retry_on_conflict(attempt)
        log.info("prediction %s failed: %s", prediction_id, error)

    async def _tell_waiting(self, items: list[work.WorkItem], decided: placement.Plan,
                            nodes: dict[str, NodeReport], now: datetime) -> None:
        """Tell each waiting prediction (in its logs) what it waits for, once per change."""
        unservable = set(decided.unservable)
        told: Counter[str] = Counter()
        position: Counter[tuple[str, str]] = Counter()
        expired: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        for item in items:
            if item.started_at is not None:
                continue
            key = (item.queue, item.model_version)
            ahead = position[key]
            if not item.held:
                position[key] += 1  # a held job is not in the queue yet: nobody waits behind it
            if told[item.queue] >= TOLD_PER_QUEUE:
                continue
            mine = [i for i in self.instances.values()
                    if i.live and i.queue == item.queue and i.model_version == item.model_version]
            if item.queue in unservable:
                waited = (now - item.created_at).total_seconds()
                if waited >= self.settings.no_hardware_timeout:
                    await self.fail_prediction(
                        item.prediction_id,
                        f"No runner node offers the hardware this prediction needs (runner label "
                        f"{item.label!r}); gave up after {self.settings.no_hardware_timeout:g} seconds", now)
                    expired[(item.label, item.queue)].add(item.prediction_id)
                    continue
                message = ("nohw", f"Waiting for hardware: no runner node offers runner label {item.label!r}; "
                                   f"the prediction fails if none appears within "
                                   f"{self.settings.no_hardware_timeout:g} seconds\n")
            elif item.held:
                message = ("held", HELD_LINE)
            elif any(i.state == "ready" for i in mine):
                # Behind a ready instance a prediction usually starts within moments: a line (an event the whole
                # platform carries) only for one that has been waiting a while.
                waited = (now - item.created_at).total_seconds()
                long_wait = ahead and waited >= QUEUED_LINE_AFTER_SECONDS
                message = ("queued", f"Queued behind {ahead} prediction(s)\n" if long_wait else "")
            elif mine:
                booting = min(mine, key=lambda i: i.requested_at or now)
                if booting.state == "booting" and booting.phase in PHASE_LINES:
                    message = (f"boot:{booting.phase}", PHASE_LINES[booting.phase] + "\n")
                else:
                    message = ("cold", f"No instance of this model is running: starting one (cold boot) on node "
                                       f"{booting.node}; queued behind {ahead} prediction(s)\n")
            elif key in self.boot_backoff and now < self.boot_backoff[key].not_before:
                backoff = self.boot_backoff[key]
                wait = (backoff.not_before - now).total_seconds()
                message = (f"backoff:{backoff.failures}",
                           f"The model failed to boot {backoff.failures} times in a row (last: {backoff.reason}); "
                           f"the next boot starts in {wait:.0f} s\n")
            else:
                message = ("wait", "")
            tag, line = message
            if tag == item.told or not line or (tag.startswith("boot:") and _phase_rank(item.told) >= _phase_rank(tag)):
                continue
            if tag == "cold" and item.told:
                continue  # the boot it waits for is already under way and told
            told[item.queue] += 1
            await self._say(item.prediction_id, tag, line)
        for (label, queue), ids in expired.items():
            await self.queues.discard(label, queue, ids)

    async def _say(self, prediction_id: str, tag: str, line: str) -> None:
        await say(self.store, prediction_id, tag, line)

    # --- operating ------------------------------------------------------------------------------------

    async def drain_node(self, node: str, *, undo: bool = False) -> None:
        """A draining node takes no new instance; its instances stop once idle and are placed elsewhere."""
        await self.catch_up()
        if (node in self.draining) != undo:
            return
        kind = "node.undrained" if undo else "node.drained"
        event = new_event(kind, f"node-{node}", {"node": node, "at": self.clock.now().isoformat()},
                          metadata=_metadata(node, actor="operator"))
        async with self.store.transaction() as tx:
            version = await tx.stream_version(f"node-{node}")
            stored = await tx.append(f"node-{node}", [event], expected_version=version)
        for item in stored:
            self._fold(item)

    def refresh_deployments(self) -> None:
        self._deployments_at = -math.inf

    def queue_stats(self, now: datetime) -> list[dict[str, Any]]:
        stats: dict[tuple[str, str], dict[str, Any]] = {}
        for item in self.last_work:
            entry = stats.setdefault((item.label, item.queue), {
                "label": item.label, "queue": item.queue, "deployment": item.deployment, "waiting": 0,
                "running": 0, "oldest_age": 0.0})
            if item.started_at is None:
                entry["waiting"] += 1
                entry["oldest_age"] = max(entry["oldest_age"], (now - item.created_at).total_seconds())
            else:
                entry["running"] += 1
        return list(stats.values())


def _demands(items: list[work.WorkItem]) -> list[placement.QueueDemand]:
    grouped: dict[tuple[str, str], list[work.WorkItem]] = defaultdict(list)
    for item in items:
        grouped[(item.queue, item.model_version)].append(item)
    demands = []
    for (queue, model_version), members in grouped.items():
        waiting = [m for m in members if m.started_at is None]
        demands.append(placement.QueueDemand(
            key=queue, label=members[0].label, model_version=model_version, waiting=len(waiting),
            running=len(members) - len(waiting),
            oldest_waiting=min((m.created_at for m in waiting), default=None),
            deployment=members[0].deployment,
        ))
    return demands


def give_up_node_alive(instance: inst.Instance, nodes: dict[str, NodeReport]) -> bool:
    return instance.node in nodes


def _node_known_gone(item: work.WorkItem, instances: dict[str, inst.Instance]) -> bool:
    """The prediction ran on an instance the scheduler has given up for its node (or on no known instance)."""
    instance = instances.get(item.instance or "")
    return instance is None or instance.state == "failed"


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


_PHASES = ("boot:fetching", "boot:environment", "boot:setup")


def _phase_rank(told: str) -> int:
    if told in _PHASES:
        return _PHASES.index(told) + 1
    return 99 if told == "queued" else 0


async def say(store: EventStore, prediction_id: str, tag: str, line: str) -> None:
    """Add ``line`` to a waiting prediction's logs (`prediction.waiting`) and remember what it was told."""
    async def attempt() -> None:
        # One read and one write (a prediction that started or ended meanwhile collides on its stream's version).
        history = await store.read_stream(model.stream_id(prediction_id))
        if not history:
            return
        state = model.load(prediction_id, history)
        events = model.decide_wait(state, logs=line, metadata=_metadata(prediction_id))
        async with store.one_statement() as unit:
            if events:
                await unit.append(model.stream_id(prediction_id), events, expected_version=state.stream_version)
            await unit.also(*work.set_told(store.schema, prediction_id, tag))

    await retry_on_conflict(attempt)


async def _tell_boot_phase(store: EventStore, instance: inst.Instance, phase: str) -> None:
    """Each waiting prediction of the booting instance's queue hears of the phase as it is reported."""
    line = PHASE_LINES.get(phase)
    if line is None:
        return
    tag = f"boot:{phase}"
    # A prediction's story only moves forward: no phase twice, none before one already told, none once queued.
    waiting = [item for item in await work.all_work(store)
               if item.started_at is None and not item.held and item.queue == instance.queue
               and item.model_version == instance.model_version and _phase_rank(item.told) < _phase_rank(tag)]
    for item in waiting[:TOLD_PER_QUEUE]:
        await say(store, item.prediction_id, tag, line + "\n")


async def record_instance_report(event: Envelope, *, store: EventStore, clock: Clock) -> None:
    """A node's report on an instance becomes the instance's event, exactly once."""
    data = event.data
    instance_id = str(data.get("instance_id") or "")
    kind = event.type.removeprefix("instance.")
    if not instance_id:
        return

    async def attempt() -> None:
        async with store.transaction() as tx:
            if not await tx.track(INSTANCE_EVENTS_CONSUMER, event.id):
                return
            history = await tx.read_stream(inst.stream_id(instance_id))
            if not history:
                # The report overtook the scheduler's own record of the decision (or the instance is unknown).
                raise Retry(f"report on unknown instance {instance_id}", delay=0.5)
            state = inst.load(instance_id, history)
            at = _parse(data.get("at")) or clock.now()
            events = inst.decide_report(state, kind, data, at=at,
                                        metadata=EventMetadata(correlation_id=instance_id, causation_id=event.id,
                                                               actor=str(data.get("runner_id") or "")))
            if events:
                await tx.append(inst.stream_id(instance_id), events, expected_version=state.version)
                recorded.append(inst.load(instance_id, history + events))

    recorded: list[inst.Instance] = []
    await retry_on_conflict(attempt)
    if recorded and kind == "booting":
        await _tell_boot_phase(store, recorded[-1], str(data.get("phase") or ""))
