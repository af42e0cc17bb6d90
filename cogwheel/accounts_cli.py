"""``cogwheel account ...`` and ``cogwheel token ...``: clients of the gateway's admin HTTP API (``/v1/admin``).

They reach the API at ``COGWHEEL_URL`` with ``COGWHEEL_ADMIN_TOKEN``, or, when those are not set, at the
running ``cogwheel up`` stack with the administrator token it stored in ``state.json``.
"""

import os
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Column, Table

from cogwheel.state import State, data_dir

__all__ = ["account_app", "token_app"]

account_app = typer.Typer(help="Users and organizations (needs an administrator token).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens: create, list, disable, enable, revoke.", no_args_is_help=True)

console = Console()


def _api() -> httpx.Client:
    state = State.load(data_dir())
    url = os.environ.get("COGWHEEL_URL") or (state.base_url if state.running() else "")
    token = os.environ.get("COGWHEEL_ADMIN_TOKEN") or state.admin_token
    if not url or not token:
        typer.echo(
            "no admin API to talk to: run `cogwheel up`, or set COGWHEEL_URL and COGWHEEL_ADMIN_TOKEN", err=True
        )
        raise typer.Exit(1)
    # The local stack's CA is trusted even without `eval $(cogwheel env)`; SSL_CERT_FILE still wins if set.
    verify = state.verify() if state.running() and not os.environ.get("SSL_CERT_FILE") else True
    return httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=30,
                        verify=verify)


def _call(method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    with _api() as client:
        try:
            response = client.request(method, f"/v1/admin{path}", json=body)
        except httpx.HTTPError as exc:
            typer.echo(f"cannot reach {client.base_url}: {exc}", err=True)
            raise typer.Exit(1) from exc
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail") or response.text
        except ValueError:
            detail = response.text
        typer.echo(f"error {response.status_code}: {str(detail).strip()}", err=True)
        raise typer.Exit(1)
    return response.json()


def _show_account(account: dict[str, Any]) -> None:
    kind = "organization" if account["type"] == "organization" else "user"
    flags = " (admin)" if account.get("admin") else ""
    console.print(f"[bold]{account['username']}[/bold] {kind}{flags}, name {account['name']!r}")
    if kind == "organization":
        console.print(f"members: {', '.join(account['members']) or '-'}")
    else:
        console.print(f"organizations: {', '.join(account['organizations']) or '-'}")


def _token_table(tokens: list[dict[str, Any]]) -> Table:
    # Ids are what the other commands take, so they are never shortened; other values wrap rather than shrink.
    table = Table(
        Column("id", no_wrap=True, min_width=32),
        Column("account", overflow="fold"),
        Column("name", overflow="fold"),
        "status",
        Column("created", overflow="fold"),
    )
    for token in tokens:
        created = token["created_at"][:19].replace("T", " ")
        table.add_row(token["id"], token["account"], token["name"], token["status"], created)
    return table


@account_app.command("create")
def account_create(
    username: Annotated[str, typer.Argument(help="Account name, as used in model names (owner/model).")],
    org: Annotated[bool, typer.Option("--org", help="Create an organization instead of a user.")] = False,
    member: Annotated[list[str] | None, typer.Option("--member", help="User to add to the organization.")] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    admin: Annotated[bool, typer.Option("--admin", help="Allow the account to use the admin API.")] = False,
) -> None:
    """Create a user or an organization (an existing account is shown unchanged)."""
    body = {"username": username, "type": "organization" if org else "user", "name": name, "admin": admin,
            "members": member or []}
    _show_account(_call("POST", "/accounts", body))


@account_app.command("add-member")
def account_add_member(organization: str, user: str) -> None:
    """Add a user to an organization: it then shares the organization's models, predictions and files."""
    _show_account(_call("POST", f"/accounts/{organization}/members", {"username": user}))


@account_app.command("remove-member")
def account_remove_member(organization: str, user: str) -> None:
    """Remove a user from an organization."""
    _show_account(_call("DELETE", f"/accounts/{organization}/members/{user}"))


@account_app.command("show")
def account_show(username: str) -> None:
    """Show an account with its members or organizations."""
    _show_account(_call("GET", f"/accounts/{username}"))


@account_app.command("list")
def account_list() -> None:
    """List every account."""
    table = Table("username", "type", "name", "admin", "members / organizations")
    for account in _call("GET", "/accounts")["results"]:
        related = account.get("members", account.get("organizations", []))
        table.add_row(account["username"], account["type"], account["name"], "yes" if account["admin"] else "",
                      ", ".join(related))
    console.print(table)


@token_app.command("create")
def token_create(
    account: Annotated[str, typer.Option("--account", help="Account the token acts as.")],
    name: Annotated[str, typer.Option("--name", help="Label, e.g. the machine or team using it.")] = "",
) -> None:
    """Create an API token; its secret is printed this once and stored only as a hash."""
    token = _call("POST", f"/accounts/{account}/tokens", {"name": name})
    console.print(f"token {token['id']} ({token['name']}) for {token['account']}:")
    typer.echo(token["token"])


@token_app.command("list")
def token_list(account: Annotated[str, typer.Option("--account", help="Whose tokens.")]) -> None:
    """List an account's tokens (never their secrets)."""
    console.print(_token_table(_call("GET", f"/accounts/{account}/tokens")["results"]))


def _change(action: str, token_id: str) -> None:
    token = _call("POST", f"/tokens/{token_id}/{action}")
    console.print(f"token {token['id']} ({token['name']}) of {token['account']}: {token['status']}")


@token_app.command("disable")
def token_disable(token_id: str) -> None:
    """Stop a token from authenticating until it is enabled again."""
    _change("disable", token_id)


@token_app.command("enable")
def token_enable(token_id: str) -> None:
    """Let a disabled token authenticate again (revoked tokens stay revoked)."""
    _change("enable", token_id)


@token_app.command("revoke")
def token_revoke(token_id: str) -> None:
    """Revoke a token for good."""
    _change("revoke", token_id)
