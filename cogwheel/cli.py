"""Entry point of the ``cogwheel`` command."""

import asyncio
import os
import shlex
from pathlib import Path
from typing import Annotated

import typer

from cogwheel.accounts_cli import account_app, token_app
from cogwheel.collections import app as collections_app
from cogwheel.scheduler_cli import app as scheduler_app
from cogwheel.servers import database_for_command, servers_for_command
from cogwheel.state import State, data_dir

__all__ = ["app", "main"]

app = typer.Typer(help="Run and operate a local Cogwheel installation.", no_args_is_help=True, add_completion=False)
app.add_typer(account_app, name="account")
app.add_typer(token_app, name="token")
app.add_typer(collections_app, name="collection")
app.add_typer(scheduler_app, name="scheduler")


@app.command()
def up(
    port: Annotated[int, typer.Option(help="Gateway HTTP port.", envvar="COGWHEEL_PORT")] = 8000,
    schedulers: Annotated[int, typer.Option(help="Scheduler processes.")] = 1,
    runners: Annotated[int, typer.Option(help="Runner processes.")] = 1,
    http: Annotated[bool, typer.Option("--http", help="Serve plain HTTP instead of HTTPS with a local CA.")] = False,
    registries: Annotated[int, typer.Option(help="Registry processes (clients fail over between them).")] = 1,
) -> None:
    """Start NATS, PostgreSQL and every service in the foreground; Ctrl-C stops them all."""
    from cogwheel.up import run_up

    code = asyncio.run(run_up(data_dir(), port, {"scheduler": schedulers, "runner": runners, "registry": registries},
                              http=http))
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
    if state.ca_bundle:
        # Python (httpx, requests), Node and curl then trust the local CA next to the usual public roots.
        for name in ("SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "CURL_CA_BUNDLE"):
            typer.echo(f"export {name}={shlex.quote(state.ca_bundle)}")


@app.command()
def push(
    directory: Annotated[Path, typer.Argument(help="Model directory with cog.yaml.", exists=True, file_okay=False)],
    model: Annotated[str, typer.Option("--model", "-m", help="Destination model, owner/name.")],
    url: Annotated[
        str | None, typer.Option(help="Gateway origin (default: the running local stack, else REPLICATE_BASE_URL).")
    ] = None,
    token: Annotated[
        str | None, typer.Option(help="API token (default: the running local stack's, else REPLICATE_API_TOKEN).")
    ] = None,
    visibility: Annotated[str, typer.Option(help="Visibility if the model is created by this push.")] = "private",
) -> None:
    """Package DIRECTORY and push it as a new version of --model; prints the version id."""
    import os

    from cogwheel.push import PushError, push_directory

    state = State.load(data_dir())
    # Like `cogwheel env`: the running local stack first; otherwise what `eval $(cogwheel env)` exported.
    verify = state.verify() if state.running() else True
    if state.running() and state.token:
        default_url, default_token = state.base_url, state.token
    else:
        default_url, default_token = os.environ.get("REPLICATE_BASE_URL", ""), os.environ.get("REPLICATE_API_TOKEN", "")
    base_url, api_token = url or default_url, token or default_token
    if not base_url or not api_token:
        typer.echo("no gateway to push to: start one with `make up`, or pass --url and --token", err=True)
        raise typer.Exit(1)
    try:
        result = push_directory(directory, model, base_url=base_url, token=api_token, visibility=visibility,
                                verify=verify)
    except PushError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    verb = "pushed" if result.created else "unchanged, already"
    typer.echo(f"{verb} {model}:{result.version_id}", err=True)
    typer.echo(result.version_id)


@app.command()
def migrate() -> None:
    """Apply every service's schema migrations."""

    async def run() -> int:
        from cogwheel.credentials import Credentials
        from cogwheel.servers import migrate_database

        # The embedded database (not one given by URL) gets a role per service schema.
        credentials = None if os.environ.get("COGWHEEL_DATABASE_URL") else Credentials.ensure(data_dir())
        async with database_for_command(data_dir()) as url:
            applied = await migrate_database(url, credentials)
        for schema, names in applied.items():
            typer.echo(f"{schema}: {len(names)} applied" + (f" ({', '.join(names)})" if names else ""))
        return 0

    raise typer.Exit(asyncio.run(run()))


@app.command("seed")
def seed_command() -> None:
    """Create the cogwheel organization, an API token, the example models and the admin account on a deployment.

    Reads COGWHEEL_REGISTRY_ADDR and COGWHEEL_NATS_URL (as in docker-compose); prints both tokens.
    """
    import os

    from cogwheel.admin import ensure_admin
    from cogwheel.seed import EXAMPLES, seed

    directory = data_dir()
    state = State.load(directory)
    registry, nats_url = os.environ.get("COGWHEEL_REGISTRY_ADDR"), os.environ.get("COGWHEEL_NATS_URL")
    if not registry or not nats_url:
        typer.echo("cogwheel seed needs COGWHEEL_REGISTRY_ADDR and COGWHEEL_NATS_URL", err=True)
        raise typer.Exit(1)
    result = asyncio.run(seed(registry, nats_url, token=state.token, token_id=state.token_id, examples=tuple(EXAMPLES)))
    admin = asyncio.run(ensure_admin(registry, state.admin_token, state.admin_token_id))
    state.token, state.token_id, state.version_id = result.token, result.token_id, result.version_id
    state.admin_token, state.admin_token_id = admin.token, admin.token_id
    state.save(directory)
    typer.echo(f"export REPLICATE_API_TOKEN={result.token}")
    typer.echo(f"export COGWHEEL_ADMIN_TOKEN={admin.token}")
    for name, version in result.versions.items():
        typer.echo(f"# cogwheel/{name} version {version}")


@app.command("secrets-keygen")
def secrets_keygen(
    directory: Annotated[Path, typer.Argument(help="Folder for runner-key (private) and runner-key.pub.")],
) -> None:
    """Create the key pair that seals secret inputs, for deployments other than `cogwheel up`.

    Give the scheduler the printed public key (COGWHEEL_SECRETS_PUBLIC_KEY) and the runners the private key
    file (COGWHEEL_SECRETS_PRIVATE_KEY_FILE).
    """
    from cogwheel.credentials import write_key_pair

    private_path, public = write_key_pair(directory)
    typer.echo(f"# private key: {private_path} (runners only)", err=True)
    typer.echo(f"export COGWHEEL_SECRETS_PUBLIC_KEY={public}")


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
