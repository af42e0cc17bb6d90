"""Account aggregate: a user or organization, an organization's members, and the API tokens issued for it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.registry.domain import names
from services.registry.domain.commands import (
    AddMember,
    CreateToken,
    DisableToken,
    EnableToken,
    EnsureAccount,
    RemoveMember,
    RevokeToken,
    TokenCommand,
)
from services.registry.domain.errors import AccountNotFound, InvalidRequest, TokenNotFound, TokenRevoked
from services.registry.domain.events import (
    AccountCreated,
    MembershipAdded,
    MembershipRemoved,
    RegistryEvent,
    TokenCreated,
    TokenDisabled,
    TokenEnabled,
)
from services.registry.domain.events import (
    TokenRevoked as TokenRevokedEvent,
)

ORGANIZATION = "organization"
USER = "user"


class Token(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    token_hash: str
    created_at: datetime
    username: str = ""
    disabled: bool = False
    revoked: bool = False

    @property
    def status(self) -> str:
        return "revoked" if self.revoked else "disabled" if self.disabled else "active"


class Account(BaseModel):
    model_config = ConfigDict(frozen=True)

    username: str
    type: str
    name: str
    created_at: datetime
    admin: bool = False
    # Usernames of an organization's members, in joining order; always empty for users.
    members: tuple[str, ...] = ()
    tokens: tuple[Token, ...] = ()

    @property
    def is_organization(self) -> bool:
        return self.type == ORGANIZATION

    def token(self, token_id: str) -> Token | None:
        return next((t for t in self.tokens if t.id == token_id), None)


def _with_token(state: Account, token_id: str, **changes: bool) -> Account:
    tokens = tuple(t.model_copy(update=changes) if t.id == token_id else t for t in state.tokens)
    return state.model_copy(update={"tokens": tokens})


def evolve(state: Account | None, event: RegistryEvent) -> Account | None:
    match event:
        case AccountCreated():
            return Account(
                username=event.username,
                type=event.type,
                name=event.name,
                created_at=event.created_at,
                admin=event.admin,
            )
        case MembershipAdded() if state is not None:
            return state.model_copy(update={"members": (*state.members, event.member)})
        case MembershipRemoved() if state is not None:
            return state.model_copy(update={"members": tuple(m for m in state.members if m != event.member)})
        case TokenCreated() if state is not None:
            token = Token(
                id=event.token_id,
                name=event.name,
                token_hash=event.token_hash,
                created_at=event.created_at,
                username=event.username,
            )
            return state.model_copy(update={"tokens": (*state.tokens, token)})
        case TokenDisabled() if state is not None:
            return _with_token(state, event.token_id, disabled=True)
        case TokenEnabled() if state is not None:
            return _with_token(state, event.token_id, disabled=False)
        case TokenRevokedEvent() if state is not None:
            return _with_token(state, event.token_id, revoked=True)
    return state


def replay(events: Iterable[RegistryEvent]) -> Account | None:
    state: Account | None = None
    for event in events:
        state = evolve(state, event)
    return state


def ensure_account(state: Account | None, cmd: EnsureAccount, now: datetime) -> list[RegistryEvent]:
    """Create the account unless it exists; an existing account is left as it is."""
    if state is not None:
        return []
    username = names.username(cmd.username)
    return [
        AccountCreated(
            username=username,
            type=names.account_type(cmd.type),
            name=cmd.name or username,
            created_at=now,
            admin=cmd.admin,
        )
    ]


def add_member(
    organization: Account | None, member: Account | None, cmd: AddMember, now: datetime
) -> list[RegistryEvent]:
    """Only users join organizations (no nesting), so membership is one level deep and cheap to check."""
    if organization is None:
        raise AccountNotFound(cmd.organization)
    if not organization.is_organization:
        raise InvalidRequest(f"{organization.username!r} is a user, not an organization")
    if member is None:
        raise AccountNotFound(cmd.member)
    if member.is_organization:
        raise InvalidRequest(f"{member.username!r} is an organization; only users can be members")
    if member.username in organization.members:
        return []
    return [MembershipAdded(organization=organization.username, member=member.username, added_at=now)]


def remove_member(organization: Account | None, cmd: RemoveMember, now: datetime) -> list[RegistryEvent]:
    if organization is None:
        raise AccountNotFound(cmd.organization)
    if cmd.member not in organization.members:
        return []
    return [MembershipRemoved(organization=organization.username, member=cmd.member, removed_at=now)]


def create_token(
    state: Account | None, cmd: CreateToken, *, token_id: str, token_hash: str, now: datetime
) -> list[RegistryEvent]:
    if state is None:
        raise AccountNotFound(cmd.username)
    if len(cmd.name) > 200:
        raise InvalidRequest("token name is longer than 200 characters")
    return [
        TokenCreated(
            username=state.username,
            token_id=token_id,
            name=cmd.name or "default",
            token_hash=token_hash,
            created_at=now,
        )
    ]


def _token(state: Account | None, cmd: TokenCommand) -> tuple[Account, Token]:
    if state is None:
        raise AccountNotFound(cmd.username)
    token = state.token(cmd.token_id)
    if token is None:
        raise TokenNotFound(cmd.token_id)
    return state, token


def disable_token(state: Account | None, cmd: DisableToken, now: datetime) -> list[RegistryEvent]:
    state, token = _token(state, cmd)
    if token.disabled or token.revoked:
        return []
    return [TokenDisabled(username=state.username, token_id=token.id, disabled_at=now)]


def enable_token(state: Account | None, cmd: EnableToken, now: datetime) -> list[RegistryEvent]:
    state, token = _token(state, cmd)
    if token.revoked:
        raise TokenRevoked(token.id)
    if not token.disabled:
        return []
    return [TokenEnabled(username=state.username, token_id=token.id, enabled_at=now)]


def revoke_token(state: Account | None, cmd: RevokeToken, now: datetime) -> list[RegistryEvent]:
    state, token = _token(state, cmd)
    if token.revoked:
        return []
    return [TokenRevokedEvent(username=state.username, token_id=token.id, revoked_at=now)]
