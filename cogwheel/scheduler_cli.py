"""``cogwheel scheduler``: runner nodes, model instances and queues; drain a node, scale a deployment.

A client of the scheduler's `SchedulerAdminService`: COGWHEEL_SCHEDULER_ADDR (and COGWHEEL_RPC_TOKEN), else the
stack that `cogwheel up` runs from this data directory.
"""

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import typer

from cogwheel.credentials import DIRECTORY as CREDENTIALS_DIRECTORY
from cogwheel.state import State, data_dir
from libs.pb.cogwheel.scheduler.v1 import scheduler_pb2 as pb
from libs.pb.cogwheel.scheduler.v1 import scheduler_pb2_grpc
from libs.rpc import RpcError, create_channel

__all__ = ["app"]

app = typer.Typer(help="Runner nodes, model instances and queues.", no_args_is_help=True)


def _target() -> tuple[str, str | None]:
    """The scheduler's address and the gRPC token: from the environment, else from the local `cogwheel up`."""
    address = os.environ.get("COGWHEEL_SCHEDULER_ADDR", "")
    if address:
        return address, None
    state = State.load(data_dir())
    token_file = data_dir() / CREDENTIALS_DIRECTORY / "rpc-token"
    token = token_file.read_text().strip() if state.scheduler_addr and token_file.is_file() else None
    return state.scheduler_addr, token


def _call(name: str, call: Callable[[scheduler_pb2_grpc.SchedulerAdminServiceStub], Awaitable[Any]]) -> Any:
    address, token = _target()
    if not address:
        typer.echo(f"cogwheel scheduler {name}: no running `cogwheel up` here; set COGWHEEL_SCHEDULER_ADDR", err=True)
        raise typer.Exit(1)

    async def run() -> Any:
        channel = create_channel(address, default_timeout=30.0, token=token)
        try:
            return await call(scheduler_pb2_grpc.SchedulerAdminServiceStub(channel))
        finally:
            await channel.close()

    try:
        return asyncio.run(run())
    except RpcError as exc:
        typer.echo(f"cogwheel scheduler {name}: {exc.details()}", err=True)
        raise typer.Exit(1) from None


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


@app.command("nodes")
def nodes() -> None:
    """Live runner nodes: hardware, slots, GPU memory used/free, instances."""
    reply = _call("nodes", lambda stub: stub.ListNodes(pb.ListNodesRequest()))
    _table([[n.id, n.hardware, f"{len(n.instances)}/{n.slots}", f"{n.gpu_memory_used_mib}",
             f"{max(n.gpu_memory_mib - n.gpu_memory_used_mib, 0)}", "draining" if n.draining else "",
             ",".join(n.instances)] for n in reply.nodes],
           ["NODE", "HARDWARE", "INSTANCES", "GPU MiB USED", "GPU MiB FREE", "", "INSTANCE IDS"])


@app.command("instances")
def instances(
    all_: Annotated[bool, typer.Option("--all", help="Stopped and failed instances too.")] = False,
) -> None:
    """Model instances: version, queue, node, state and since when, predictions served."""
    reply = _call("instances", lambda stub: stub.ListInstances(pb.ListInstancesRequest(include_ended=all_)))
    _table([[i.id, i.version[:12], i.deployment or i.queue[:24], i.node, i.state, i.since,
             str(i.predictions_served), f"{i.boot_time:.2f}" if i.boot_time else "", i.reason]
            for i in reply.instances],
           ["INSTANCE", "VERSION", "QUEUE", "NODE", "STATE", "SINCE", "SERVED", "BOOT s", "REASON"])


@app.command("queues")
def queues() -> None:
    """Queue depth, running predictions and the oldest waiting prediction's age, per version or deployment."""
    reply = _call("queues", lambda stub: stub.ListQueues(pb.ListQueuesRequest()))
    _table([[q.label, q.deployment or q.queue, str(q.waiting), str(q.running), f"{q.oldest_age_seconds:.1f}"]
            for q in reply.queues], ["LABEL", "QUEUE", "WAITING", "RUNNING", "OLDEST s"])


@app.command("drain")
def drain(
    node: Annotated[str, typer.Argument(help="Runner id, as `cogwheel scheduler nodes` shows it.")],
    undo: Annotated[bool, typer.Option("--undo", help="Take the node back into service.")] = False,
) -> None:
    """Drain a node: it finishes its work and takes no new instance; its instances move elsewhere."""
    _call("drain", lambda stub: stub.DrainNode(pb.DrainNodeRequest(node=node, undo=undo)))
    typer.echo(f"node {node}: {'back in service' if undo else 'draining'}")


@app.command("scale")
def scale(
    deployment: Annotated[str, typer.Argument(help="owner/name")],
    min_instances: Annotated[int | None, typer.Option("--min", help="Instances kept at least.")] = None,
    max_instances: Annotated[int | None, typer.Option("--max", help="Instances at most.")] = None,
) -> None:
    """Scale a deployment: a new release with other instance bounds."""
    owner, _, name = deployment.partition("/")
    if not owner or not name:
        typer.echo("cogwheel scheduler scale: give the deployment as owner/name", err=True)
        raise typer.Exit(1)
    request = pb.ScaleDeploymentRequest(owner=owner, name=name)
    if min_instances is not None:
        request.min_instances = min_instances
    if max_instances is not None:
        request.max_instances = max_instances
    reply = _call("scale", lambda stub: stub.ScaleDeployment(request))
    typer.echo(f"{deployment}: min_instances {reply.min_instances}, max_instances {reply.max_instances}")
