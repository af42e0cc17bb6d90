"""Organizations, membership and the token lifecycle: aggregate decisions and use cases over the in-memory log."""

from datetime import UTC, datetime

import pytest
from registry_fakes import FakeClock, FakeViews, InMemoryEventLog

from services.registry import handlers
from services.registry.domain import accounts
from services.registry.domain.commands import (
    AddMember,
    CreateToken,
    DisableToken,
    EnableToken,
    EnsureAccount,
    RemoveMember,
    RevokeToken,
)
from services.registry.domain.errors import (
    AccountNotFound,
    InvalidRequest,
    TokenNotFound,
    TokenRevoked,
    Unauthenticated,
)
from services.registry.domain.events import (
    AccountCreated,
    MembershipAdded,
    MembershipRemoved,
    TokenCreated,
    TokenDisabled,
    TokenEnabled,
    from_envelope,
    to_envelope,
)
from services.registry.domain.events import TokenRevoked as TokenRevokedEvent

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ACME = AccountCreated(username="acme", type="organization", name="Acme", created_at=NOW)
ALICE = AccountCreated(username="alice", type="user", name="Alice", created_at=NOW)
ISSUED = TokenCreated(username="alice", token_id="t1", name="ci", token_hash="h", created_at=NOW)


def test_ensure_account_records_the_admin_flag() -> None:
    [event] = accounts.ensure_account(None, EnsureAccount(username="root", admin=True), NOW)
    assert isinstance(event, AccountCreated) and event.admin
    assert accounts.replay([event]).admin  # type: ignore[union-attr]


def test_account_created_events_from_before_the_admin_flag_still_load() -> None:
    envelope = to_envelope(ALICE)
    legacy = envelope.model_copy(update={"data": {k: v for k, v in envelope.data.items() if k != "admin"}})
    assert from_envelope(legacy) == ALICE and not ALICE.admin


def test_add_member_once_and_remove() -> None:
    org, alice = accounts.replay([ACME]), accounts.replay([ALICE])
    [added] = accounts.add_member(org, alice, AddMember(organization="acme", member="alice"), NOW)
    assert added == MembershipAdded(organization="acme", member="alice", added_at=NOW)
    assert added.stream_id == "account-acme"
    joined = accounts.evolve(org, added)
    assert joined is not None and joined.members == ("alice",)
    assert accounts.add_member(joined, alice, AddMember(organization="acme", member="alice"), NOW) == []

    [removed] = accounts.remove_member(joined, RemoveMember(organization="acme", member="alice"), NOW)
    assert removed == MembershipRemoved(organization="acme", member="alice", removed_at=NOW)
    left = accounts.evolve(joined, removed)
    assert left is not None and left.members == ()
    assert accounts.remove_member(left, RemoveMember(organization="acme", member="alice"), NOW) == []


def test_membership_needs_an_organization_and_a_user() -> None:
    org, alice = accounts.replay([ACME]), accounts.replay([ALICE])
    with pytest.raises(InvalidRequest, match="not an organization"):
        accounts.add_member(alice, alice, AddMember(organization="alice", member="alice"), NOW)
    with pytest.raises(InvalidRequest, match="only users"):
        accounts.add_member(org, org, AddMember(organization="acme", member="acme"), NOW)
    with pytest.raises(AccountNotFound):
        accounts.add_member(None, alice, AddMember(organization="ghost", member="alice"), NOW)
    with pytest.raises(AccountNotFound):
        accounts.add_member(org, None, AddMember(organization="acme", member="ghost"), NOW)
    with pytest.raises(AccountNotFound):
        accounts.remove_member(None, RemoveMember(organization="ghost", member="alice"), NOW)


def test_token_lifecycle_disable_enable_revoke() -> None:
    state = accounts.replay([ALICE, ISSUED])
    assert state is not None and state.tokens[0].status == "active"

    [disabled] = accounts.disable_token(state, DisableToken(username="alice", token_id="t1"), NOW)
    assert disabled == TokenDisabled(username="alice", token_id="t1", disabled_at=NOW)
    state = accounts.evolve(state, disabled)
    assert state is not None and state.tokens[0].status == "disabled"
    assert accounts.disable_token(state, DisableToken(username="alice", token_id="t1"), NOW) == []

    [enabled] = accounts.enable_token(state, EnableToken(username="alice", token_id="t1"), NOW)
    assert enabled == TokenEnabled(username="alice", token_id="t1", enabled_at=NOW)
    state = accounts.evolve(state, enabled)
    assert state is not None and state.tokens[0].status == "active"
    assert accounts.enable_token(state, EnableToken(username="alice", token_id="t1"), NOW) == []

    [revoked] = accounts.revoke_token(state, RevokeToken(username="alice", token_id="t1"), NOW)
    assert revoked == TokenRevokedEvent(username="alice", token_id="t1", revoked_at=NOW)
    state = accounts.evolve(state, revoked)
    assert state is not None and state.tokens[0].status == "revoked"
    assert accounts.revoke_token(state, RevokeToken(username="alice", token_id="t1"), NOW) == []
    assert accounts.disable_token(state, DisableToken(username="alice", token_id="t1"), NOW) == []
    with pytest.raises(TokenRevoked):
        accounts.enable_token(state, EnableToken(username="alice", token_id="t1"), NOW)


def test_token_commands_need_the_token_on_that_account() -> None:
    state = accounts.replay([ALICE, ISSUED])
    with pytest.raises(TokenNotFound):
        accounts.revoke_token(state, RevokeToken(username="alice", token_id="other"), NOW)
    with pytest.raises(AccountNotFound):
        accounts.revoke_token(None, RevokeToken(username="ghost", token_id="t1"), NOW)


async def _given(log: InMemoryEventLog, clock: FakeClock) -> None:
    await handlers.ensure_account(EnsureAccount(username="acme", type="organization"), log.uow, clock)
    await handlers.ensure_account(EnsureAccount(username="alice"), log.uow, clock)
    await handlers.ensure_account(EnsureAccount(username="bob"), log.uow, clock)


async def test_members_and_their_organizations(event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews) -> None:
    await _given(event_log, clock)
    await handlers.add_member(AddMember(organization="acme", member="alice"), event_log.uow, clock)
    org = await handlers.add_member(AddMember(organization="acme", member="bob"), event_log.uow, clock)
    assert org.members == ("alice", "bob") and org.tokens == ()
    assert await views.organizations_of("alice") == ["acme"]

    org = await handlers.remove_member(RemoveMember(organization="acme", member="alice"), event_log.uow, clock)
    assert org.members == ("bob",)
    assert await views.organizations_of("alice") == []
    assert (await handlers.get_account("acme", views)).members == ("bob",)
    with pytest.raises(AccountNotFound):
        await handlers.get_account("ghost", views)
    assert [e.TYPE for e in event_log.events("account-acme")] == [
        "account.created",
        "membership.added",
        "membership.added",
        "membership.removed",
    ]


async def test_tokens_are_found_by_id_alone(event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews) -> None:
    await _given(event_log, clock)
    issued = await handlers.create_token(CreateToken(username="alice", name="laptop"), event_log.uow, clock)
    assert (issued.info.id, issued.info.name, issued.info.status) == (issued.token_id, "laptop", "active")

    disabled = await handlers.disable_token(DisableToken(token_id=issued.token_id), event_log.uow, clock)
    assert disabled.status == "disabled"
    with pytest.raises(Unauthenticated):
        await handlers.authenticate_token(issued.token, views)
    await handlers.enable_token(EnableToken(token_id=issued.token_id), event_log.uow, clock)
    assert (await handlers.authenticate_token(issued.token, views))[1] == issued.token_id

    revoked = await handlers.revoke_token(RevokeToken(token_id=issued.token_id), event_log.uow, clock)
    assert revoked.status == "revoked"
    with pytest.raises(Unauthenticated):
        await handlers.authenticate_token(issued.token, views)
    with pytest.raises(TokenRevoked):
        await handlers.enable_token(EnableToken(token_id=issued.token_id), event_log.uow, clock)

    listed = await handlers.list_tokens("alice", views)
    assert [(t.id, t.status, t.token_hash) for t in listed] == [(issued.token_id, "revoked", "")]
    with pytest.raises(TokenNotFound):
        await handlers.revoke_token(RevokeToken(token_id="nope"), event_log.uow, clock)


async def test_a_token_named_with_another_account_is_not_found(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    await _given(event_log, clock)
    issued = await handlers.create_token(CreateToken(username="alice"), event_log.uow, clock)
    with pytest.raises(TokenNotFound):
        await handlers.revoke_token(RevokeToken(token_id=issued.token_id, username="bob"), event_log.uow, clock)
    assert event_log.version("account-alice") == 2
