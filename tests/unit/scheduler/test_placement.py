"""Placement and autoscaling decisions as pure functions of state and an injected time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.scheduler.domain.placement import (
    DeploymentSpec,
    InstanceView,
    Node,
    Policy,
    QueueDemand,
    World,
    plan,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(scale_to_zero_after=300, scale_in_after=30, scale_out_after=2, max_instances_per_version=3)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def ready(id: str, version: str, node: str, *, busy: int = 0, idle_for: float = 0, memory: int = 0,
          queue: str | None = None, slots: int = 1, label: str = "cpu") -> InstanceView:
    return InstanceView(id=id, queue=queue or f"v-{version}", label=label, model_version=version, node=node,
                        state="ready", since=ago(1000), slots=slots, busy=busy, gpu_memory_mib=memory,
                        last_used=ago(idle_for))


def waiting(version: str, count: int, *, age: float = 0, running: int = 0, label: str = "cpu",
            queue: str | None = None) -> QueueDemand:
    return QueueDemand(key=queue or f"v-{version}", label=label, model_version=version, waiting=count,
                       running=running, oldest_waiting=ago(age) if count else None)


def test_a_waiting_prediction_with_no_instance_cold_boots_one() -> None:
    decided = plan(World([Node("n1", "cpu", 4)], [], [waiting("a", 1)]), NOW, POLICY)
    assert [(s.model_version, s.node, s.reason) for s in decided.starts] == [("a", "n1", "cold boot")]
    assert not decided.stops and not decided.unservable


def test_a_queue_no_node_can_serve_is_reported_unservable() -> None:
    decided = plan(World([Node("n1", "cpu", 4)], [], [waiting("g", 2, label="gpu")]), NOW, POLICY)
    assert decided.starts == [] and decided.unservable == ["v-g"]


def test_a_cpu_model_may_borrow_a_gpu_node_but_prefers_cpu_nodes() -> None:
    both = World([Node("gpu1", "gpu", 4, 16000), Node("cpu1", "cpu", 4)], [], [waiting("a", 1)])
    assert plan(both, NOW, POLICY).starts[0].node == "cpu1"
    gpu_only = World([Node("gpu1", "gpu", 4, 16000)], [], [waiting("a", 1)])
    assert plan(gpu_only, NOW, POLICY).starts[0].node == "gpu1"


def test_scale_out_waits_for_the_queue_to_age_then_adds_one_instance_at_a_time() -> None:
    nodes = [Node("n1", "cpu", 4), Node("n2", "cpu", 4)]
    busy = [ready("i1", "a", "n1", busy=1)]
    young = plan(World(nodes, busy, [waiting("a", 5, age=0.5, running=1)]), NOW, POLICY)
    assert young.starts == []
    old = plan(World(nodes, busy, [waiting("a", 5, age=3, running=1)]), NOW, POLICY)
    assert [(s.node, s.reason) for s in old.starts] == [("n2", "scale out")]
    # While the new one boots, no further one is added.
    booting = busy + [InstanceView("i2", "v-a", "cpu", "a", "n2", "booting", ago(1))]
    assert plan(World(nodes, booting, [waiting("a", 5, age=4, running=1)]), NOW, POLICY).starts == []


def test_scale_out_stops_at_the_per_version_cap_and_at_max_instances() -> None:
    nodes = [Node(f"n{i}", "cpu", 4) for i in range(5)]
    three = [ready(f"i{i}", "a", f"n{i}", busy=1) for i in range(3)]
    assert plan(World(nodes, three, [waiting("a", 9, age=10, running=3)]), NOW, POLICY).starts == []
    spec = DeploymentSpec("acme/app", "d-app", "cpu", "a", min_instances=0, max_instances=2)
    two = [ready(f"i{i}", "a", f"n{i}", busy=1, queue="d-app") for i in range(2)]
    demand = waiting("a", 9, age=10, running=2, queue="d-app")
    assert plan(World(nodes, two, [demand], [spec]), NOW, POLICY).starts == []


def test_idle_instances_scale_in_then_to_zero_after_the_window() -> None:
    nodes = [Node("n1", "cpu", 4), Node("n2", "cpu", 4)]
    two = [ready("i1", "a", "n1", idle_for=40), ready("i2", "a", "n2", idle_for=10)]
    decided = plan(World(nodes, two, []), NOW, POLICY)
    assert [s.instance for s in decided.stops] == ["i1"]  # the extra one, idle past scale_in_after
    one = [ready("i2", "a", "n2", idle_for=299)]
    assert plan(World(nodes, one, []), NOW, POLICY).stops == []
    one = [ready("i2", "a", "n2", idle_for=301)]
    assert [s.instance for s in plan(World(nodes, one, []), NOW, POLICY).stops] == ["i2"]


def test_busy_instances_are_never_stopped() -> None:
    nodes = [Node("n1", "cpu", 4)]
    busy = [ready("i1", "a", "n1", busy=1, idle_for=1000)]
    assert plan(World(nodes, busy, [waiting("a", 0, running=1)]), NOW, POLICY).stops == []


def test_min_instances_are_booted_without_predictions_and_kept_when_idle() -> None:
    nodes = [Node("n1", "cpu", 4), Node("n2", "cpu", 4)]
    spec = DeploymentSpec("acme/app", "d-app", "cpu", "a", min_instances=2, max_instances=3)
    decided = plan(World(nodes, [], [], [spec]), NOW, POLICY)
    assert sorted(s.node for s in decided.starts) == ["n1", "n2"]
    assert all(s.reason == "min_instances" and s.deployment == "acme/app" for s in decided.starts)
    idle = [ready("i1", "a", "n1", idle_for=5000, queue="d-app"), ready("i2", "a", "n2", idle_for=5000, queue="d-app")]
    assert plan(World(nodes, idle, [], [spec]), NOW, POLICY).stops == []


def test_an_old_release_scales_in_once_its_queue_drained() -> None:
    nodes = [Node("n1", "cpu", 4), Node("n2", "cpu", 4)]
    spec = DeploymentSpec("acme/app", "d-app", "cpu", "b", min_instances=1, max_instances=2)
    old = [ready("i1", "a", "n1", idle_for=1, queue="d-app")]
    decided = plan(World(nodes, old, [], [spec]), NOW, POLICY)
    assert [s.instance for s in decided.stops] == ["i1"]
    assert [(s.model_version, s.reason) for s in decided.starts] == [("b", "min_instances")]
    # With predictions of the old release still queued, its instance stays to serve them.
    kept = plan(World(nodes, old, [waiting("a", 1, queue="d-app")], [spec]), NOW, POLICY)
    assert kept.stops == []


def test_bin_packing_puts_small_models_on_the_fullest_node_that_fits() -> None:
    nodes = [Node("big", "gpu", 4, 24000), Node("small", "gpu", 4, 16000)]
    present = [ready("i1", "a", "small", memory=8000, label="gpu")]
    world = World(nodes, present, [waiting("b", 1, label="gpu")], version_memory={"b": 6000})
    assert plan(world, NOW, POLICY).starts[0].node == "small"  # 2000 MiB left there, 18000 on big
    world = World(nodes, present, [waiting("c", 1, label="gpu")], version_memory={"c": 12000})
    assert plan(world, NOW, POLICY).starts[0].node == "big"


def test_several_small_models_share_one_gpu_node_within_its_memory() -> None:
    nodes = [Node("g", "gpu", 8, 16000)]
    demands = [waiting(v, 1, label="gpu", age=10 - i) for i, v in enumerate("abcd")]
    memory = {v: 5000 for v in "abcd"}
    decided = plan(World(nodes, [], demands, version_memory=memory), NOW, POLICY)
    assert sorted(s.model_version for s in decided.starts) == ["a", "b", "c"]  # 15000 of 16000 MiB
    assert decided.stops == []


def test_a_full_node_evicts_its_least_recently_used_idle_instance() -> None:
    nodes = [Node("g", "gpu", 8, 16000)]
    present = [ready("old", "a", "g", memory=8000, idle_for=100, label="gpu"),
               ready("recent", "b", "g", memory=8000, idle_for=5, label="gpu")]
    world = World(nodes, present, [waiting("c", 1, label="gpu")], version_memory={"c": 8000})
    decided = plan(world, NOW, POLICY)
    assert [s.instance for s in decided.stops] == ["old"]
    assert [(s.model_version, s.reason) for s in decided.starts] == [("c", "cold boot after eviction")]


def test_busy_and_min_instances_are_not_evicted() -> None:
    nodes = [Node("g", "gpu", 8, 16000)]
    spec = DeploymentSpec("acme/app", "d-app", "gpu", "a", min_instances=1, max_instances=1)
    present = [ready("kept", "a", "g", memory=8000, idle_for=100, queue="d-app", label="gpu"),
               ready("busy", "b", "g", memory=8000, busy=1, label="gpu")]
    world = World(nodes, present, [waiting("c", 1, label="gpu")], [spec], version_memory={"c": 8000})
    decided = plan(world, NOW, POLICY)
    assert decided.stops == [] and decided.starts == []


def test_slots_bound_the_instances_of_a_node() -> None:
    nodes = [Node("n1", "cpu", 2)]
    present = [ready("i1", "a", "n1", busy=1), ready("i2", "b", "n1", busy=1)]
    assert plan(World(nodes, present, [waiting("c", 1)]), NOW, POLICY).starts == []


def test_instances_of_a_lost_node_are_given_up_and_replaced() -> None:
    nodes = [Node("n2", "cpu", 4)]
    present = [ready("i1", "a", "n1", busy=1)]
    decided = plan(World(nodes, present, [waiting("a", 2)]), NOW, POLICY)
    assert [g.instance for g in decided.give_ups] == ["i1"] and "n1" in decided.give_ups[0].reason
    assert [s.node for s in decided.starts] == ["n2"]


def test_a_draining_node_gets_nothing_new_and_its_idle_instances_stop() -> None:
    nodes = [Node("n1", "cpu", 4, draining=True), Node("n2", "cpu", 4)]
    present = [ready("i1", "a", "n1", idle_for=1)]
    decided = plan(World(nodes, present, [waiting("b", 1)]), NOW, POLICY)
    assert [s.instance for s in decided.stops] == ["i1"]
    assert [s.node for s in decided.starts] == ["n2"]


def test_a_boot_that_never_reports_is_given_up() -> None:
    nodes = [Node("n1", "cpu", 4)]
    stuck = [InstanceView("i1", "v-a", "cpu", "a", "n1", "placed", ago(POLICY.boot_timeout + 1))]
    decided = plan(World(nodes, stuck, [waiting("a", 1)]), NOW, POLICY)
    assert [g.instance for g in decided.give_ups] == ["i1"]
    assert [s.node for s in decided.starts] == ["n1"]


def test_a_stopping_instance_of_a_lost_node_is_given_up() -> None:
    stopping = [InstanceView("i1", "v-a", "cpu", "a", "gone", "stopping", ago(5))]
    decided = plan(World([Node("n1", "cpu", 4)], stopping, []), NOW, POLICY)
    assert [g.instance for g in decided.give_ups] == ["i1"]


def test_a_queue_backing_off_after_failed_boots_starts_nothing_until_its_time() -> None:
    nodes = [Node("n1", "cpu", 4)]
    backing_off = World(nodes, [], [waiting("a", 1)], boot_not_before={("v-a", "a"): NOW + timedelta(seconds=5)})
    decided = plan(backing_off, NOW, POLICY)
    assert decided.starts == [] and decided.backing_off == ["v-a"] and not decided.unservable
    later = plan(backing_off, NOW + timedelta(seconds=5), POLICY)
    assert [s.reason for s in later.starts] == ["cold boot"] and later.backing_off == []


def test_a_deployment_floor_waits_out_the_backoff_too() -> None:
    spec = DeploymentSpec("acme/d", "d-acme/d", "cpu", "a", min_instances=1, max_instances=2)
    world = World([Node("n1", "cpu", 4)], [], [], deployments=[spec],
                  boot_not_before={("d-acme/d", "a"): NOW + timedelta(seconds=1)})
    assert plan(world, NOW, POLICY).starts == []
    assert len(plan(world, NOW + timedelta(seconds=1), POLICY).starts) == 1
