"""The administrator account and its API token, which `cogwheel account|token` use against `/v1/admin`."""

from dataclasses import dataclass

from libs.pb.cogwheel.registry.v1 import registry_pb2 as pb
from libs.pb.cogwheel.registry.v1 import registry_pb2_grpc
from libs.rpc import RpcNotFound, RpcPermissionDenied, RpcUnauthenticated, create_channel

__all__ = ["ADMIN_ACCOUNT", "AdminToken", "AdminSetupError", "ensure_admin"]

ADMIN_ACCOUNT = "admin"


class AdminSetupError(RuntimeError):
    """The administrator account name is taken by an account that is not an administrator."""


@dataclass(frozen=True)
class AdminToken:
    token: str
    token_id: str


async def ensure_admin(registry_addr: str, token: str = "", token_id: str = "") -> AdminToken:
    """Create the `admin` account (flagged administrator) and a token for it, reusing `token` while it works."""
    channel = create_channel(registry_addr, default_timeout=30.0)
    try:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        account = await registry.EnsureAccount(
            pb.EnsureAccountRequest(username=ADMIN_ACCOUNT, type="user", name="Administrator", admin=True)
        )
        if not account.admin:
            raise AdminSetupError(f"account {ADMIN_ACCOUNT!r} exists but is not an administrator")
        if token:
            try:
                found = await registry.AuthenticateToken(pb.AuthenticateTokenRequest(token=token))
                if found.account.username == ADMIN_ACCOUNT:
                    return AdminToken(token, found.token_id or token_id)
            except (RpcUnauthenticated, RpcPermissionDenied, RpcNotFound):
                pass  # disabled, revoked, or the database was reset: mint a new one
        created = await registry.CreateToken(pb.CreateTokenRequest(username=ADMIN_ACCOUNT, name="cogwheel-cli"))
        return AdminToken(created.token, created.token_id)
    finally:
        await channel.close()
