"""Account aggregate: an account and the API tokens issued for it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from services.registry.domain import names
from services.registry.domain.commands import CreateToken, DisableToken, EnsureAccount
from services.registry.domain.errors import AccountNotFound, InvalidRequest, TokenNotFound
from services.registry.domain.events import AccountCreated, RegistryEvent, TokenCreated, TokenDisabled


class Token(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    token_hash: str
    created_at: datetime
    disabled: bool = False


class Account(BaseModel):
    model_config = ConfigDict(frozen=True)

    username: str
    type: str
    name: str
    created_at: datetime
    tokens: tuple[Token, ...] = ()

    def token(self, token_id: str) -> Token | None:
        return next((t for t in self.tokens if t.id == token_id), None)


def evolve(state: Account | None, event: RegistryEvent) -> Account | None:
    match event:
        case AccountCreated():
            return Account(username=event.username, type=event.type, name=event.name, created_at=event.created_at)
        case TokenCreated() if state is not None:
            token = Token(id=event.token_id, name=event.name, token_hash=event.token_hash, created_at=event.created_at)
            return state.model_copy(update={"tokens": (*state.tokens, token)})
        case TokenDisabled() if state is not None:
            tokens = tuple(
                t.model_copy(update={"disabled": True}) if t.id == event.token_id else t for t in state.tokens
            )
            return state.model_copy(update={"tokens": tokens})
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
        )
    ]


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


def disable_token(state: Account | None, cmd: DisableToken, now: datetime) -> list[RegistryEvent]:
    if state is None:
        raise AccountNotFound(cmd.username)
    token = state.token(cmd.token_id)
    if token is None:
        raise TokenNotFound(cmd.token_id)
    if token.disabled:
        return []
    return [TokenDisabled(username=state.username, token_id=token.id, disabled_at=now)]
