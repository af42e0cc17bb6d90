"""Entry point of the ``cogwheel`` command."""

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from cogwheel.accounts_cli import account_app, token_app
from cogwheel.collections import app as collections_app
from cogwheel.servers import database_for_command, servers_for_command
from cogwheel.state import State, data_dir

__all__ = ["app", "main"]

app = typer.Typer(help="Run and operate a local Cogwheel installation.", no_args_is_help=True, add_completion=False)
app.add_typer(account_app, name="account")
app.add_typer(token_app, name="token")
app.add_typer(collections_app, name="collection")


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Gateway HTTP port.", envvar="COGWHEEL_PORT")] = 8000,
    schedulers: Annotated[int, typer.Option(help="Scheduler processes.")] = 1,
    runners: Annotated[int, typer.Option(help="Runner processes.")] = 1,
) -> None:
    """Start NATS, PostgreSQL and every service in the foreground; Ctrl-C stops them all."""
    from cogwheel.up import run_up

    code = asyncio.run(run_up(data_dir(), port, {"scheduler": schedulers, "runner": runners}))
    raise typer.Exit(code)


@app.command()
def env() -> None:
    """Print shell exports for the running installation: eval $(cogwheel env)."""
    directory = data_dir()
    state = State.load(directory)
    if not state.running() or not state.token:
        typer.echo(f"cogwheel is not running (no live state in {directory / 'state.json'}); start it with: make up",
                   err=True)
        raise typer.Exit(1)
    # Replicate's Python client 1.x writes every path as /v1/..., so its base URL is the origin alone.
    typer.echo(f"export REPLICATE_BASE_URL={state.base_url}")
    typer.echo(f"export REPLICATE_API_TOKEN={state.token}")


@app.command()
def migrate() -> None:
    """Apply every service's schema migrations."""

    async def run() -> int:
        from libs.db.migrations import migrate_all

        async with database_for_command(data_dir()) as url:
            applied = await migrate_all(url)
        for schema, names in applied.items():
            typer.echo(f"{schema}: {len(names)} applied" + (f" ({', '.join(names)})" if names else ""))
        return 0

    raise typer.Exit(asyncio.run(run()))


@app.command("seed")
def seed_command() -> None:
    """Create the cogwheel organization, an API token, cogwheel/hello-world and the admin account on a deployment.

    Reads COGWHEEL_REGISTRY_ADDR and COGWHEEL_NATS_URL (as in docker-compose); prints both tokens.
    """
    import os

    from cogwheel.admin import ensure_admin
    from cogwheel.seed import seed

    directory = data_dir()
    state = State.load(directory)
    registry, nats_url = os.environ.get("COGWHEEL_REGISTRY_ADDR"), os.environ.get("COGWHEEL_NATS_URL")
    if not registry or not nats_url:
        typer.echo("cogwheel seed needs COGWHEEL_REGISTRY_ADDR and COGWHEEL_NATS_URL", err=True)
        raise typer.Exit(1)
    result = asyncio.run(seed(registry, nats_url, token=state.token, token_id=state.token_id))
    admin = asyncio.run(ensure_admin(registry, state.admin_token, state.admin_token_id))
    state.token, state.token_id, state.version_id = result.token, result.token_id, result.version_id
    state.admin_token, state.admin_token_id = admin.token, admin.token_id
    state.save(directory)
    typer.echo(f"export REPLICATE_API_TOKEN={result.token}")
    typer.echo(f"export COGWHEEL_ADMIN_TOKEN={admin.token}")
    typer.echo(f"# cogwheel/hello-world version {result.version_id}")


@app.command("rebuild-projections")
def rebuild_projections(
    service: Annotated[str | None, typer.Option(help="Only this service's projections.")] = None,
) -> None:
    """Drop and replay read models from the event store."""

    async def run() -> int:
        from libs.eventstore.projections import rebuild_all

        async with servers_for_command(data_dir()) as servers:
            codes = await rebuild_all(servers.database_url, service=service, nats_url=servers.nats_url)
        for name, code in codes.items():
            typer.echo(f"{name}: {'rebuilt' if code == 0 else f'failed (exit {code})'}")
        return 0 if all(code == 0 for code in codes.values()) else 1

    raise typer.Exit(asyncio.run(run()))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
