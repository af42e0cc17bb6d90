"""``cogwheel collection``: define the collections that ``GET /v1/collections`` serves."""

import asyncio
import os
from typing import Annotated

import typer

from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import RpcError, create_channel

__all__ = ["app", "put_collection"]

app = typer.Typer(help="Define collections of models.", no_args_is_help=True)


async def put_collection(
    registry_addr: str, slug: str, name: str, description: str, models: list[str], full_description: str = ""
) -> pb.Collection:
    """Create the collection `slug`, or replace its definition."""
    channel = create_channel(registry_addr, default_timeout=30.0)
    try:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        return await stub.PutCollection(
            pb.PutCollectionRequest(
                slug=slug, name=name, description=description, full_description=full_description, models=models
            )
        )
    finally:
        await channel.close()


@app.command("put")
def put(
    slug: Annotated[str, typer.Argument(help="URL name, e.g. text-to-image.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    model: Annotated[list[str], typer.Option("--model", help="owner/name; repeat, in display order.")],
    description: Annotated[str, typer.Option(help="One-line description.")] = "",
    full_description: Annotated[str, typer.Option(help="Markdown shown on the collection's page.")] = "",
) -> None:
    """Create or replace a collection. Reads COGWHEEL_REGISTRY_ADDR."""
    registry = os.environ.get("COGWHEEL_REGISTRY_ADDR")
    if not registry:
        typer.echo("cogwheel collection put needs COGWHEEL_REGISTRY_ADDR", err=True)
        raise typer.Exit(1)
    try:
        collection = asyncio.run(put_collection(registry, slug, name, description, model, full_description))
    except RpcError as exc:
        typer.echo(f"cogwheel collection put: {exc.details()}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"collection {collection.slug}: {len(collection.models)} model(s)")
