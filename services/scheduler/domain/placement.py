"""Placement and autoscaling: which instances should exist and where, as a pure function of state and time.

`plan(world, now, policy)` looks at the live nodes, the instances, each queue's demand and the deployments,
and returns the decisions to carry out: start an instance on a node, stop one (idle, evicted, drained, an
old release), give one up (its node is gone or it never reported back), and the queues that no live node
can serve. Nothing here does I/O or reads a clock; the handlers record the decisions as events and command
the nodes.

Rules:
- A queue is one version (or one deployment) on one runner label. Its instances run on nodes of that
  label; a CPU queue may also use any other node (GPU nodes run CPU predictors).
- Cold boot: a queue with waiting predictions and no live instance gets one.
- Scale out: while predictions wait longer than `scale_out_after` and outnumber the free slots, one more
  instance (one at a time per queue: none of its instances is still booting), up to the deployment's
  `max_instances` or `max_instances_per_version`.
- Scale in: an idle instance beyond what the queue needs stops after `scale_in_after` seconds idle, the
  last one after `scale_to_zero_after`; never below a deployment's `min_instances`.
- Bin-packing: a node holds at most `slots` instances and as much GPU memory as it declares; of the nodes
  that fit, the one left with the least free memory (then the fewest free slots) is chosen, so small models
  share a node and large ones find room. One instance per queue and version per node (more copies of one
  queue go to other nodes; on one node a worker's own slots give concurrency).
- Backoff: a queue whose latest boots failed in a row starts no instance before `boot_not_before` (the
  controller computes it from the instances' history: `instance.boot_backoff`).
- Eviction: when no node has room, the least recently used idle instances of one node are stopped to make
  room (never an instance a deployment's `min_instances` keeps, never a busy or booting one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Node:
    id: str
    label: str
    slots: int
    gpu_memory_mib: int = 0
    draining: bool = False


@dataclass(frozen=True)
class InstanceView:
    id: str
    queue: str
    label: str
    model_version: str
    node: str
    state: str
    since: datetime
    slots: int = 1
    busy: int = 0
    gpu_memory_mib: int = 0
    # When it last started or ended a prediction (its boot time until then).
    last_used: datetime | None = None
    deployment: str | None = None


@dataclass(frozen=True)
class QueueDemand:
    key: str
    label: str
    model_version: str
    waiting: int
    running: int = 0
    oldest_waiting: datetime | None = None
    deployment: str | None = None


@dataclass(frozen=True)
class DeploymentSpec:
    name: str  # owner/name
    queue: str
    label: str
    model_version: str
    min_instances: int
    max_instances: int


@dataclass(frozen=True)
class World:
    nodes: list[Node]
    instances: list[InstanceView]
    queues: list[QueueDemand]
    deployments: list[DeploymentSpec] = field(default_factory=list)
    # GPU memory each version needs (declared in cog.yaml or measured), learned from its instances.
    version_memory: dict[str, int] = field(default_factory=dict)
    # (queue, version) → the earliest time another instance may boot, after boots that failed in a row.
    boot_not_before: dict[tuple[str, str], datetime] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    scale_to_zero_after: float = 300.0
    scale_in_after: float = 30.0
    scale_out_after: float = 1.0
    max_instances_per_version: int = 4
    # An instance that stays requested/placed/booting longer than this is given up.
    boot_timeout: float = 900.0
    # Boots that keep failing are retried after base, 2×base, 4×base, ... seconds, at most `boot_backoff_max`.
    boot_backoff_base: float = 10.0
    boot_backoff_max: float = 300.0


@dataclass(frozen=True)
class Start:
    queue: str
    label: str
    model_version: str
    node: str
    deployment: str | None
    gpu_memory_mib: int
    reason: str


@dataclass(frozen=True)
class Stop:
    instance: str
    reason: str


@dataclass(frozen=True)
class GiveUp:
    instance: str
    reason: str


@dataclass(frozen=True)
class Plan:
    starts: list[Start] = field(default_factory=list)
    stops: list[Stop] = field(default_factory=list)
    give_ups: list[GiveUp] = field(default_factory=list)
    # Queues with waiting predictions that no live node offers the hardware for.
    unservable: list[str] = field(default_factory=list)
    # Queues that want an instance but wait out the backoff after failed boots.
    backing_off: list[str] = field(default_factory=list)


BOOTING = frozenset({"requested", "placed", "booting"})
ACTIVE = BOOTING | {"ready"}
CPU_LABEL = "cpu"


def can_serve(node: Node, label: str) -> bool:
    return node.label == label or label == CPU_LABEL


def _seconds(later: datetime, earlier: datetime | None) -> float:
    return 0.0 if earlier is None else (later - earlier).total_seconds()


@dataclass
class _NodeRoom:
    node: Node
    instances: list[InstanceView]

    @property
    def used_memory(self) -> int:
        return sum(instance.gpu_memory_mib for instance in self.instances)

    @property
    def free_memory(self) -> int:
        return self.node.gpu_memory_mib - self.used_memory

    @property
    def free_slots(self) -> int:
        return self.node.slots - len(self.instances)

    def fits(self, memory: int) -> bool:
        return self.free_slots >= 1 and (memory <= 0 or memory <= self.free_memory)

    def hosts(self, queue: str, model_version: str) -> bool:
        return any(i.queue == queue and i.model_version == model_version for i in self.instances)


def plan(world: World, now: datetime, policy: Policy) -> Plan:
    result = Plan()
    live_nodes = {node.id: node for node in world.nodes}
    active: list[InstanceView] = []
    for instance in world.instances:
        if instance.state == "stopping" and instance.node not in live_nodes:
            result.give_ups.append(GiveUp(instance.id, f"node {instance.node} stopped sending heartbeats"))
            continue
        if instance.state not in ACTIVE:
            continue
        if instance.node not in live_nodes:
            result.give_ups.append(GiveUp(instance.id, f"node {instance.node} stopped sending heartbeats"))
            continue
        if instance.state in BOOTING and _seconds(now, instance.since) > policy.boot_timeout:
            result.give_ups.append(GiveUp(instance.id, f"no report from node {instance.node} for "
                                                       f"{policy.boot_timeout:g} s while booting"))
            continue
        active.append(instance)
    rooms = {node.id: _NodeRoom(node, [i for i in active if i.node == node.id]) for node in world.nodes}
    stopping: set[str] = set()

    deployments = {spec.queue: spec for spec in world.deployments}
    spec: DeploymentSpec | None
    demands: dict[tuple[str, str], QueueDemand] = {(q.key, q.model_version): q for q in world.queues}
    # A deployment's current release is a demand of its own (its min_instances), even with nothing queued.
    for spec in world.deployments:
        demands.setdefault((spec.queue, spec.model_version), QueueDemand(
            spec.queue, spec.label, spec.model_version, waiting=0, deployment=spec.name))
    # Instances of a queue without demand (drained, or an old release) are still planned for: they scale in.
    for instance in active:
        demands.setdefault((instance.queue, instance.model_version), QueueDemand(
            instance.queue, instance.label, instance.model_version, waiting=0, deployment=instance.deployment))

    for (key, model_version), demand in sorted(demands.items(), key=lambda item: _urgency(item[1], now)):
        spec = deployments.get(key)
        current_release = spec is not None and spec.model_version == model_version
        floor = spec.min_instances if current_release and spec is not None else 0
        ceiling = (spec.max_instances if current_release and spec is not None and spec.max_instances > 0
                   else policy.max_instances_per_version)
        if spec is not None and not current_release and demand.waiting == 0 and demand.running == 0:
            ceiling = 0  # an old release with nothing left to do
        mine = [i for i in active if i.queue == key and i.model_version == model_version and i.id not in stopping]
        slots_each = max((i.slots for i in mine if i.state == "ready"), default=1)
        needed = math.ceil((demand.waiting + demand.running) / slots_each) if demand.waiting + demand.running else 0
        target = max(floor, min(ceiling, needed))
        booting = [i for i in mine if i.state in BOOTING]
        free_slots = sum(max(i.slots - i.busy, 0) for i in mine if i.state == "ready") + len(booting)

        want_more = 0
        if len(mine) < floor:
            want_more = floor - len(mine)
        elif demand.waiting > 0 and not mine and ceiling > 0:
            want_more = 1  # cold boot
        elif (demand.waiting > free_slots and not booting and len(mine) < min(ceiling, max(target, 1))
              and _seconds(now, demand.oldest_waiting) >= policy.scale_out_after):
            want_more = 1  # scale out, one instance at a time
        not_before = world.boot_not_before.get((key, model_version))
        if want_more and not_before is not None and now < not_before:
            want_more = 0
            result.backing_off.append(key)
        for _ in range(want_more):
            start = _place(world, rooms, demand, policy, now, deployments, stopping, result)
            if start is None:
                if demand.waiting > 0 and not any(can_serve(n, demand.label) for n in world.nodes):
                    result.unservable.append(key)
                break
            result.starts.append(start)

        # Scale in: idle instances beyond the target, longest idle first.
        idle = sorted((i for i in mine if i.state == "ready" and i.busy == 0),
                      key=lambda i: i.last_used or i.since)
        keep = len(mine)
        for instance in idle:
            if keep <= max(target, floor):
                break
            idle_for = _seconds(now, instance.last_used or instance.since)
            limit = policy.scale_to_zero_after if keep == 1 else policy.scale_in_after
            if spec is not None and not current_release:
                limit = 0.0  # an old release's instance goes as soon as it has nothing left to do
            if demand.waiting == 0 and idle_for >= limit:
                why = "an earlier release of its deployment" if limit == 0.0 else f"idle for {idle_for:.0f} s"
                result.stops.append(Stop(instance.id, why))
                stopping.add(instance.id)
                keep -= 1
        # A draining node's instances stop once idle; they are replaced elsewhere by the rules above.
        for instance in mine:
            if live_nodes[instance.node].draining and instance.busy == 0 and instance.id not in stopping \
                    and instance.state == "ready":
                result.stops.append(Stop(instance.id, f"node {instance.node} is draining"))
                stopping.add(instance.id)
    return result


def _urgency(demand: QueueDemand, now: datetime) -> tuple[int, float]:
    """Queues waiting longest are placed first."""
    return (0 if demand.waiting else 1, -_seconds(now, demand.oldest_waiting))


def _place(
    world: World, rooms: dict[str, _NodeRoom], demand: QueueDemand, policy: Policy, now: datetime,
    deployments: dict[str, DeploymentSpec], stopping: set[str], result: Plan,
) -> Start | None:
    memory = world.version_memory.get(demand.model_version, 0)
    candidates = [room for room in rooms.values()
                  if can_serve(room.node, demand.label) and not room.node.draining
                  and not room.hosts(demand.key, demand.model_version)]
    # Nodes of the queue's own label first: a CPU model only borrows a GPU node when no CPU node has room.
    candidates.sort(key=lambda room: (room.node.label != demand.label, room.free_memory, room.free_slots, room.node.id))
    chosen = next((room for room in candidates if room.fits(memory)), None)
    reason = "cold boot" if demand.waiting and not any(
        i.queue == demand.key and i.model_version == demand.model_version for room in rooms.values()
        for i in room.instances) else "scale out" if demand.waiting else "min_instances"
    if chosen is None:
        chosen = _evict_for(candidates, memory, now, deployments, stopping, result)
        if chosen is None:
            return None
        reason += " after eviction"
    placeholder = InstanceView(
        id=f"pending-{len(result.starts)}", queue=demand.key, label=demand.label,
        model_version=demand.model_version, node=chosen.node.id, state="requested", since=now,
        gpu_memory_mib=memory, deployment=demand.deployment,
    )
    chosen.instances.append(placeholder)
    return Start(demand.key, demand.label, demand.model_version, chosen.node.id, demand.deployment, memory, reason)


def _evict_for(
    candidates: list[_NodeRoom], memory: int, now: datetime, deployments: dict[str, DeploymentSpec],
    stopping: set[str], result: Plan,
) -> _NodeRoom | None:
    """The node where stopping the fewest least recently used idle instances makes room; they are stopped."""
    best: tuple[int, _NodeRoom, list[InstanceView]] | None = None
    for room in candidates:
        evictable = sorted(
            (i for i in room.instances
             if i.state == "ready" and i.busy == 0 and i.id not in stopping and not _kept(i, room, deployments)),
            key=lambda i: i.last_used or i.since,
        )
        chosen: list[InstanceView] = []
        remaining = list(room.instances)
        for instance in evictable:
            probe = _NodeRoom(room.node, [i for i in remaining if i.id != instance.id])
            chosen.append(instance)
            remaining = probe.instances
            if probe.fits(memory):
                if best is None or len(chosen) < best[0]:
                    best = (len(chosen), room, list(chosen))
                break
    if best is None:
        return None
    _, room, victims = best
    for victim in victims:
        idle_for = _seconds(now, victim.last_used or victim.since)
        result.stops.append(Stop(victim.id, f"evicted (least recently used, idle for {idle_for:.0f} s) "
                                            "to make room for another model"))
        stopping.add(victim.id)
        room.instances.remove(victim)
    return room


def _kept(instance: InstanceView, room: _NodeRoom, deployments: dict[str, DeploymentSpec]) -> bool:
    """An instance a deployment's min_instances needs (it would fall below the floor without it)."""
    spec = deployments.get(instance.queue)
    if spec is None or spec.model_version != instance.model_version or spec.min_instances <= 0:
        return False
    return True
