"""Registry use cases over the in-memory event log: retries, idempotency, token secrecy."""

import asyncio

import pytest
from registry_fakes import FakeClock, FakeViews, InMemoryEventLog

from services.registry import handlers
from services.registry.domain.commands import CreateModel, CreateToken, CreateVersion, DisableToken, EnsureAccount
from services.registry.domain.errors import (
    AccountNotFound,
    ModelAlreadyExists,
    ModelNotFound,
    Unauthenticated,
    VersionAlreadyExists,
    VersionNotFound,
)


async def given_model(log: InMemoryEventLog, clock: FakeClock, owner: str = "alice", name: str = "hello") -> None:
    await handlers.ensure_account(EnsureAccount(username=owner), log.uow, clock)
    await handlers.create_model(CreateModel(owner=owner, name=name), log.uow, clock)


async def test_ensure_account_is_idempotent(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    first = await handlers.ensure_account(EnsureAccount(username="alice", name="Alice"), event_log.uow, clock)
    again = await handlers.ensure_account(EnsureAccount(username="alice"), event_log.uow, clock)
    assert first == again and first.name == "Alice"
    assert event_log.version("account-alice") == 1


async def test_concurrent_ensure_account_records_one_account(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    results = await asyncio.gather(
        *(handlers.ensure_account(EnsureAccount(username="alice"), event_log.uow, clock) for _ in range(5))
    )
    assert len({r.created_at for r in results}) == 1
    assert event_log.version("account-alice") == 1


async def test_tokens_authenticate_until_disabled(
    event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews
) -> None:
    await handlers.ensure_account(EnsureAccount(username="alice"), event_log.uow, clock)
    issued = await handlers.create_token(CreateToken(username="alice", name="ci"), event_log.uow, clock)
    account, token_id = await handlers.authenticate_token(issued.token, views)
    assert (account.username, token_id) == ("alice", issued.token_id)
    assert all(issued.token not in e.model_dump_json() for e in event_log.log)

    await handlers.disable_token(DisableToken(username="alice", token_id=token_id), event_log.uow, clock)
    with pytest.raises(Unauthenticated):
        await handlers.authenticate_token(issued.token, views)


@pytest.mark.parametrize("token", ["", "cwk_short", "cwk_" + "x" * 40, "r8_" + "x" * 37])
async def test_unknown_tokens_are_unauthenticated(views: FakeViews, token: str) -> None:
    with pytest.raises(Unauthenticated):
        await handlers.authenticate_token(token, views)


async def test_create_token_needs_an_account(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    with pytest.raises(AccountNotFound):
        await handlers.create_token(CreateToken(username="ghost"), event_log.uow, clock)


async def test_racing_create_model_has_one_winner(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    await handlers.ensure_account(EnsureAccount(username="alice"), event_log.uow, clock)
    cmd = CreateModel(owner="alice", name="hello")
    results = await asyncio.gather(
        *(handlers.create_model(cmd, event_log.uow, clock) for _ in range(4)), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, ModelAlreadyExists) for r in results if r not in winners)
    assert event_log.version("model-alice/hello") == 1


async def test_create_model_needs_the_owner(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    with pytest.raises(AccountNotFound):
        await handlers.create_model(CreateModel(owner="ghost", name="hello"), event_log.uow, clock)


async def test_versions_are_idempotent_and_listed_newest_first(
    event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews
) -> None:
    await given_model(event_log, clock)
    first = await handlers.create_version(
        CreateVersion(owner="alice", name="hello", version_id="v1", openapi_schema={"a": 1}), event_log.uow, clock
    )
    repeat = await handlers.create_version(
        CreateVersion(owner="alice", name="hello", version_id="v1", openapi_schema={"b": 2}), event_log.uow, clock
    )
    assert repeat == first and repeat.openapi_schema == {"a": 1}
    await handlers.create_version(CreateVersion(owner="alice", name="hello", version_id="v2"), event_log.uow, clock)

    listed = await handlers.list_versions("alice", "hello", views)
    assert [v.id for v in listed] == ["v2", "v1"]
    assert (await handlers.get_model("alice", "hello", views)).latest_version_id == "v2"
    assert await handlers.get_version("v1", views) == first


async def test_a_version_id_belongs_to_one_model(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    await given_model(event_log, clock, name="one")
    await handlers.create_model(CreateModel(owner="alice", name="two"), event_log.uow, clock)
    await handlers.create_version(CreateVersion(owner="alice", name="one", version_id="v"), event_log.uow, clock)
    with pytest.raises(VersionAlreadyExists):
        await handlers.create_version(CreateVersion(owner="alice", name="two", version_id="v"), event_log.uow, clock)


async def test_reads_of_missing_things_raise_not_found(views: FakeViews) -> None:
    with pytest.raises(ModelNotFound):
        await handlers.get_model("alice", "nope", views)
    with pytest.raises(ModelNotFound):
        await handlers.list_versions("alice", "nope", views)
    with pytest.raises(VersionNotFound):
        await handlers.get_version("nope", views)
