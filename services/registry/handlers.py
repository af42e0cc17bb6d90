"""Registry use cases: load an aggregate, decide, append; reads go to the views."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from collections.abc import Collection as Known
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from libs.events import EventMetadata
from libs.eventstore.retry import retry_on_conflict
from services.registry.domain import accounts, collections, deployments, files, models, names, tokens
from services.registry.domain.accounts import Account, Token
from services.registry.domain.collections import Collection
from services.registry.domain.commands import (
    AddMember,
    CreateDeployment,
    CreateFile,
    CreateModel,
    CreateToken,
    CreateVersion,
    DeleteDeployment,
    DeleteFile,
    DeleteModel,
    DeleteVersion,
    DisableToken,
    EnableToken,
    EnsureAccount,
    PutCollection,
    RemoveMember,
    RevokeToken,
    TokenCommand,
    UpdateDeployment,
    UpdateModel,
)
from services.registry.domain.deployments import Deployment
from services.registry.domain.errors import (
    AccountNotFound,
    CollectionNotFound,
    DeploymentNotFound,
    FileNotFound,
    ModelNotFound,
    TokenNotFound,
    Unauthenticated,
    VersionNotFound,
)
from services.registry.domain.events import (
    CollectionDefined,
    RegistryEvent,
    account_stream,
    collection_stream,
    deployment_stream,
    file_stream,
    model_stream,
)
from services.registry.domain.files import File
from services.registry.domain.models import Model, Version
from services.registry.ports import Clock, RegistryViews, UnitOfWork, UnitOfWorkFactory

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class IssuedToken:
    token: str
    token_id: str
    info: Token


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
            after = _folded_with_tokens(state, new)
            info = after.token(token_id)
            assert info is not None
            return IssuedToken(token=secret, token_id=token_id, info=info)

    return await retry_on_conflict(attempt)


TokenDecision = Callable[[Account | None, Any, datetime], list[RegistryEvent]]


async def _change_token(
    cmd: TokenCommand, decide: TokenDecision, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None
) -> Token:
    async def attempt() -> Token:
        async with uow(meta or EventMetadata()) as tx:
            username = cmd.username or await tx.token_owner(cmd.token_id)
            if username is None:
                raise TokenNotFound(cmd.token_id)
            state, version = await _load_account(tx, username)
            new = decide(state, cmd.model_copy(update={"username": username}), clock.now())
            await tx.append(account_stream(username), new, version)
            token = _folded_with_tokens(state, new).token(cmd.token_id)
            assert token is not None
            return token

    return await retry_on_conflict(attempt)


async def disable_token(
    cmd: DisableToken, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Token:
    return await _change_token(cmd, accounts.disable_token, uow, clock, meta)


async def enable_token(
    cmd: EnableToken, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Token:
    return await _change_token(cmd, accounts.enable_token, uow, clock, meta)


async def revoke_token(
    cmd: RevokeToken, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Token:
    return await _change_token(cmd, accounts.revoke_token, uow, clock, meta)


async def add_member(
    cmd: AddMember, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Account:
    """Appends to the organization's stream only: a member account is never deleted, so reading it suffices."""

    async def attempt() -> Account:
        async with uow(meta or EventMetadata()) as tx:
            organization, version = await _load_account(tx, cmd.organization)
            member, _ = await _load_account(tx, cmd.member)
            new = accounts.add_member(organization, member, cmd, clock.now())
            await tx.append(account_stream(cmd.organization), new, version)
            return _folded(organization, new)

    return await retry_on_conflict(attempt)


async def remove_member(
    cmd: RemoveMember, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Account:
    async def attempt() -> Account:
        async with uow(meta or EventMetadata()) as tx:
            organization, version = await _load_account(tx, cmd.organization)
            new = accounts.remove_member(organization, cmd, clock.now())
            await tx.append(account_stream(cmd.organization), new, version)
            return _folded(organization, new)

    return await retry_on_conflict(attempt)


def _folded_with_tokens(state: Account | None, new: list[RegistryEvent]) -> Account:
    for event in new:
        state = accounts.evolve(state, event)
    assert state is not None
    return state


def _folded(state: Account | None, new: list[RegistryEvent]) -> Account:
    return _folded_with_tokens(state, new).model_copy(update={"tokens": ()})


async def get_account(username: str, views: RegistryViews) -> Account:
    account = await views.get_account(username)
    if account is None:
        raise AccountNotFound(username)
    return account


async def list_tokens(username: str, views: RegistryViews) -> list[Token]:
    await get_account(username, views)
    return await views.list_tokens(username)


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


async def update_model(
    cmd: UpdateModel, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> None:
    async def attempt() -> None:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_model(tx, cmd.owner, cmd.name)
            await tx.append(model_stream(cmd.owner, cmd.name), models.update_model(state, cmd, clock.now()), version)

    await retry_on_conflict(attempt)


async def delete_model(
    cmd: DeleteModel, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> None:
    async def attempt() -> None:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_model(tx, cmd.owner, cmd.name)
            await tx.append(model_stream(cmd.owner, cmd.name), models.delete_model(state, cmd, clock.now()), version)

    await retry_on_conflict(attempt)


async def delete_version(
    cmd: DeleteVersion, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> None:
    async def attempt() -> None:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_model(tx, cmd.owner, cmd.name)
            used_by = await tx.deployments_running(cmd.version_id)
            new = models.delete_version(state, cmd, clock.now(), used_by=used_by)
            await tx.append(model_stream(cmd.owner, cmd.name), new, version)

    await retry_on_conflict(attempt)


async def list_models(
    views: RegistryViews, *, cursor: str, limit: int, sort_by: str, sort_direction: str, query: str,
    owners: list[str] | None = None,
) -> tuple[list[Model], str]:
    if owners and not query.strip():
        return await views.list_models(cursor=cursor, limit=page_size(limit), sort_by=sort_by,
                                       sort_direction=sort_direction, query="", owners=owners)
    return await views.list_models(
        cursor=cursor, limit=page_size(limit), sort_by=sort_by, sort_direction=sort_direction, query=query.strip()
    )


def page_size(limit: int) -> int:
    return max(1, min(limit or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE))


async def create_file(
    cmd: CreateFile, uow: UnitOfWorkFactory, clock: Clock, ttl: timedelta, meta: EventMetadata | None = None
) -> File:
    async with uow(meta or EventMetadata()) as tx:
        events, version = await tx.load(file_stream(cmd.id))
        new = files.create_file(files.replay(events), cmd, existed=version > 0, now=clock.now(), ttl=ttl)
        await tx.append(file_stream(cmd.id), new, version)
    created = files.replay(new)
    assert created is not None
    return created


async def get_file(file_id: str, views: RegistryViews) -> File:
    found = await views.get_file(file_id)
    if found is None:
        raise FileNotFound(file_id)
    return found


async def delete_file(cmd: DeleteFile, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None) -> File:
    async def attempt() -> File:
        async with uow(meta or EventMetadata()) as tx:
            events, version = await tx.load(file_stream(cmd.id))
            state = files.replay(events)
            await tx.append(file_stream(cmd.id), files.delete_file(state, cmd, clock.now()), version)
            assert state is not None
            return state

    return await retry_on_conflict(attempt)


async def purge_expired_files(
    views: RegistryViews,
    uow: UnitOfWorkFactory,
    clock: Clock,
    delete_bytes: Callable[[str], Awaitable[object]],
    *,
    batch: int = 100,
) -> list[str]:
    """Delete the bytes of files past their expiry, then record `file.deleted`; returns their ids.

    Bytes first: a crash in between leaves the file recorded, and the next sweep finds nothing to delete but
    the record. Instances sweeping at once are harmless: the slower one finds the file already deleted.
    """
    purged = []
    for file_id in await views.expired_file_ids(limit=batch):
        await delete_bytes(file_id)
        try:
            await delete_file(DeleteFile(id=file_id), uow, clock, EventMetadata(actor="registry"))
        except FileNotFound:
            continue
        purged.append(file_id)
    return purged


async def put_collection(
    cmd: PutCollection, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> Collection:
    async def attempt() -> Collection:
        async with uow(meta or EventMetadata()) as tx:
            events, version = await tx.load(collection_stream(cmd.slug))
            current = events[-1] if events and isinstance(events[-1], CollectionDefined) else None
            new = collections.define_collection(current, cmd, clock.now())
            await tx.append(collection_stream(cmd.slug), new, version)
            defined = new[-1] if new else current
            assert isinstance(defined, CollectionDefined)
            return Collection.model_validate(defined.model_dump())

    return await retry_on_conflict(attempt)


async def get_collection(slug: str, views: RegistryViews) -> Collection:
    found = await views.get_collection(slug)
    if found is None:
        raise CollectionNotFound(slug)
    return found


async def _load_deployment(uow: UnitOfWork, owner: str, name: str) -> tuple[Deployment | None, int]:
    events, version = await uow.load(deployment_stream(owner, name))
    return deployments.replay(events), version


async def _load_model_ref(uow: UnitOfWork, ref: str) -> Model | None:
    owner, name = deployments.split_model_ref(ref)
    model, _ = await _load_model(uow, owner, name)
    return model


def _folded_deployment(state: Deployment | None, new: list[RegistryEvent]) -> Deployment:
    for event in new:
        state = deployments.evolve(state, event)
    assert state is not None
    return state


async def create_deployment(
    cmd: CreateDeployment,
    uow: UnitOfWorkFactory,
    clock: Clock,
    hardware: Known[str],
    meta: EventMetadata | None = None,
) -> Deployment:
    """Reads the owner and the model; appends to the deployment's stream only (a racing creator loses there)."""
    names.username(cmd.owner)
    names.deployment_name(cmd.name)

    async def attempt() -> Deployment:
        async with uow(meta or EventMetadata()) as tx:
            owner, _ = await _load_account(tx, cmd.owner)
            model = await _load_model_ref(tx, cmd.model)
            state, version = await _load_deployment(tx, cmd.owner, cmd.name)
            new = deployments.create_deployment(
                state, cmd, owner=owner, model=model, hardware=hardware, now=clock.now()
            )
            await tx.append(deployment_stream(cmd.owner, cmd.name), new, version)
            return _folded_deployment(state, new)

    return await retry_on_conflict(attempt)


async def update_deployment(
    cmd: UpdateDeployment,
    uow: UnitOfWorkFactory,
    clock: Clock,
    hardware: Known[str],
    meta: EventMetadata | None = None,
) -> Deployment:
    if not deployments.exists_as_name(cmd.owner, cmd.name):
        raise DeploymentNotFound(cmd.owner, cmd.name)

    async def attempt() -> Deployment:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_deployment(tx, cmd.owner, cmd.name)
            model = await _load_model_ref(tx, state.current_release.model) if state is not None else None
            new = deployments.update_deployment(state, cmd, model=model, hardware=hardware, now=clock.now())
            await tx.append(deployment_stream(cmd.owner, cmd.name), new, version)
            return _folded_deployment(state, new)

    return await retry_on_conflict(attempt)


async def delete_deployment(
    cmd: DeleteDeployment, uow: UnitOfWorkFactory, clock: Clock, meta: EventMetadata | None = None
) -> None:
    if not deployments.exists_as_name(cmd.owner, cmd.name):
        raise DeploymentNotFound(cmd.owner, cmd.name)

    async def attempt() -> None:
        async with uow(meta or EventMetadata()) as tx:
            state, version = await _load_deployment(tx, cmd.owner, cmd.name)
            new = deployments.delete_deployment(state, cmd, clock.now())
            await tx.append(deployment_stream(cmd.owner, cmd.name), new, version)

    await retry_on_conflict(attempt)


async def get_deployment(owner: str, name: str, views: RegistryViews) -> Deployment:
    found = await views.get_deployment(owner, name) if deployments.exists_as_name(owner, name) else None
    if found is None:
        raise DeploymentNotFound(owner, name)
    return found


async def list_deployments(
    owners: list[str], views: RegistryViews, *, cursor: str, limit: int, all_owners: bool = False
) -> tuple[list[Deployment], str]:
    """Deployments owned by any of `owners` (an account and its organizations), or by anyone (`all_owners`,
    for the scheduler), newest first."""
    return await views.list_deployments(None if all_owners else sorted(set(owners)), cursor=cursor,
                                        limit=page_size(limit))
