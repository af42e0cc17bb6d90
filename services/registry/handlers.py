"""Registry use cases: load an aggregate, decide, append; reads go to the views."""

from __future__ import annotations

from dataclasses import dataclass

from libs.events import EventMetadata
from libs.eventstore.retry import retry_on_conflict
from services.registry.domain import accounts, models, tokens
from services.registry.domain.accounts import Account
from services.registry.domain.commands import CreateModel, CreateToken, CreateVersion, DisableToken, EnsureAccount
from services.registry.domain.errors import ModelNotFound, Unauthenticated, VersionNotFound
from services.registry.domain.events import account_stream, model_stream
from services.registry.domain.models import Model, Version
from services.registry.ports import Clock, RegistryViews, UnitOfWork, UnitOfWorkFactory


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str


async def _load_account(uow: UnitOfWork, username: str) -> tuple[Account | None, int]:
    events, version = await uow.load(account_stream(username))
    return accounts.replay(events), version


async def _load_model(uow: UnitOfWork, owner: str, name: str) -> tuple[Model | None, int]:
    events, version = await uow.load(model_stream(owner, name))
    return models.replay(events), version


async def ensure_account(
    cmd: EnsureAccount, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Account:
    async def attempt() -> Account:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_account(tx, cmd.username)
            new = accounts.ensure_account(state, cmd, clock.now())
            await tx.append(account_stream(cmd.username), new, version)
            result = accounts.replay(new) if new else state
            assert result is not None
            return result

    return await retry_on_conflict(attempt)


async def create_token(
    cmd: CreateToken, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> IssuedToken:
    secret, token_id = tokens.new_token(), tokens.new_token_id()

    async def attempt() -> IssuedToken:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_account(tx, cmd.username)
            new = accounts.create_token(
                state, cmd, token_id=token_id, token_hash=tokens.hash_token(secret), now=clock.now()
            )
            await tx.append(account_stream(cmd.username), new, version)
            return IssuedToken(token=secret, token_id=token_id)

    return await retry_on_conflict(attempt)


async def disable_token(
    cmd: DisableToken, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> None:
    async def attempt() -> None:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_account(tx, cmd.username)
            new = accounts.disable_token(state, cmd, clock.now())
            await tx.append(account_stream(cmd.username), new, version)

    await retry_on_conflict(attempt)


async def authenticate_token(token: str, views: RegistryViews) -> tuple[Account, str]:
    found = await views.account_for_token(tokens.hash_token(token)) if tokens.looks_like_token(token) else None
    if found is None:
        raise Unauthenticated()
    return found


async def create_model(
    cmd: CreateModel, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Model:
    """Two racing creators both see an empty stream; the loser's retry finds the model and fails cleanly."""

    async def attempt() -> Model:
        async with uow(meta or EventMetadata()) as tx:
            owner, _ = await _load_account(tx, cmd.owner)
            state, version = await _load_model(tx, cmd.owner, cmd.name)
            new = models.create_model(state, cmd, owner=owner, now=clock.now())
            await tx.append(model_stream(cmd.owner, cmd.name), new, version)
            result = models.replay(new)
            assert result is not None
            return result

    return await retry_on_conflict(attempt)


async def create_version(
    cmd: CreateVersion, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Version:
    async def attempt() -> Version:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_model(tx, cmd.owner, cmd.name)
            claimed_by = await tx.version_owner(cmd.version_id)
            new = models.create_version(state, cmd, claimed_by=claimed_by, now=clock.now())
            await tx.append(model_stream(cmd.owner, cmd.name), new, version)
            after = state
            for event in new:
                after = models.evolve(after, event)
            assert after is not None
            return after.versions[cmd.version_id]

    return await retry_on_conflict(attempt)


async def get_model(owner: str, name: str, views: RegistryViews) -> Model:
    model = await views.get_model(owner, name)
    if model is None:
        raise ModelNotFound(owner, name)
    return model


async def get_version(version_id: str, views: RegistryViews) -> Version:
    version = await views.get_version(version_id)
    if version is None:
        raise VersionNotFound(version_id)
    return version


async def list_versions(owner: str, name: str, views: RegistryViews) -> list[Version]:
    await get_model(owner, name, views)
    return await views.list_versions(owner, name)
