"""Registry aggregates: given past events, when a command arrives, then these events (or this error)."""

from datetime import UTC, datetime

import pytest

from libs.events import EventMetadata
from services.registry.domain import accounts, models, tokens
from services.registry.domain.commands import CreateModel, CreateToken, CreateVersion, DisableToken, EnsureAccount
from services.registry.domain.errors import (
    AccountNotFound,
    InvalidRequest,
    ModelAlreadyExists,
    ModelNotFound,
    TokenNotFound,
    VersionAlreadyExists,
)
from services.registry.domain.events import (
    AccountCreated,
    ModelCreated,
    TokenCreated,
    TokenDisabled,
    VersionCreated,
    from_envelope,
    to_envelope,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALICE = AccountCreated(username="alice", type="user", name="Alice", created_at=NOW)
HELLO = ModelCreated(owner="alice", name="hello", visibility="public", hardware="cpu", description="", created_at=NOW)


def version_created(version_id: str, model: str = "hello") -> VersionCreated:
    return VersionCreated(
        id=version_id,
        owner="alice",
        name=model,
        cog_version="0.9",
        openapi_schema={},
        package_key=version_id,
        predictor_ref="predict.py:Predictor",
        hardware="cpu",
        created_at=NOW,
    )


def test_ensure_account_creates_a_new_account_with_defaults() -> None:
    [event] = accounts.ensure_account(None, EnsureAccount(username="bob", type="", name=""), NOW)
    assert event == AccountCreated(username="bob", type="user", name="bob", created_at=NOW)


def test_ensure_account_leaves_an_existing_account_alone() -> None:
    state = accounts.replay([ALICE])
    assert accounts.ensure_account(state, EnsureAccount(username="alice", type="organization"), NOW) == []


@pytest.mark.parametrize(
    "cmd", [EnsureAccount(username=""), EnsureAccount(username="a/b"), EnsureAccount(username="x", type="robot")]
)
def test_ensure_account_rejects_malformed_input(cmd: EnsureAccount) -> None:
    with pytest.raises(InvalidRequest):
        accounts.ensure_account(None, cmd, NOW)


def test_create_token_records_only_the_hash() -> None:
    state = accounts.replay([ALICE])
    [event] = accounts.create_token(state, CreateToken(username="alice"), token_id="t1", token_hash="h", now=NOW)
    assert event == TokenCreated(username="alice", token_id="t1", name="default", token_hash="h", created_at=NOW)


def test_create_token_needs_an_account() -> None:
    with pytest.raises(AccountNotFound):
        accounts.create_token(None, CreateToken(username="ghost"), token_id="t", token_hash="h", now=NOW)


def test_disable_token_once() -> None:
    issued = TokenCreated(username="alice", token_id="t1", name="ci", token_hash="h", created_at=NOW)
    state = accounts.replay([ALICE, issued])
    [event] = accounts.disable_token(state, DisableToken(username="alice", token_id="t1"), NOW)
    assert event == TokenDisabled(username="alice", token_id="t1", disabled_at=NOW)
    disabled = accounts.evolve(state, event)
    assert disabled is not None and disabled.tokens[0].disabled
    assert accounts.disable_token(disabled, DisableToken(username="alice", token_id="t1"), NOW) == []
    with pytest.raises(TokenNotFound):
        accounts.disable_token(state, DisableToken(username="alice", token_id="nope"), NOW)


def test_create_model_with_defaults() -> None:
    owner = accounts.replay([ALICE])
    [event] = models.create_model(
        None, CreateModel(owner="alice", name="hello", visibility="", hardware=""), owner=owner, now=NOW
    )
    assert event == HELLO


def test_create_model_needs_the_owner_and_a_free_name() -> None:
    owner = accounts.replay([ALICE])
    with pytest.raises(AccountNotFound):
        models.create_model(None, CreateModel(owner="ghost", name="hello"), owner=None, now=NOW)
    with pytest.raises(ModelAlreadyExists):
        models.create_model(models.replay([HELLO]), CreateModel(owner="alice", name="hello"), owner=owner, now=NOW)


@pytest.mark.parametrize(
    "cmd",
    [
        CreateModel(owner="alice", name="Hello"),
        CreateModel(owner="alice", name="a/b"),
        CreateModel(owner="alice", name="ok", visibility="secret"),
        CreateModel(owner="alice", name="ok", hardware="GPU X"),
        CreateModel(owner="alice", name="ok", description="x" * 5001),
    ],
)
def test_create_model_rejects_malformed_input(cmd: CreateModel) -> None:
    with pytest.raises(InvalidRequest):
        models.create_model(None, cmd, owner=accounts.replay([ALICE]), now=NOW)


def test_create_version_copies_the_model_hardware_and_becomes_latest() -> None:
    state = models.replay([HELLO.model_copy(update={"hardware": "gpu-t4"})])
    cmd = CreateVersion(owner="alice", name="hello", version_id="abc", openapi_schema={"openapi": "3.0.2"})
    [event] = models.create_version(state, cmd, claimed_by=None, now=NOW)
    assert isinstance(event, VersionCreated)
    assert (event.hardware, event.package_key, event.openapi_schema) == ("gpu-t4", "abc", {"openapi": "3.0.2"})
    after = models.evolve(state, event)
    assert after is not None and after.latest_version_id == "abc" and list(after.versions) == ["abc"]


def test_create_version_is_idempotent_for_the_same_model() -> None:
    state = models.replay([HELLO, version_created("abc")])
    cmd = CreateVersion(owner="alice", name="hello", version_id="abc")
    assert models.create_version(state, cmd, claimed_by="alice/hello", now=NOW) == []


def test_create_version_refuses_an_id_owned_by_another_model() -> None:
    state = models.replay([HELLO])
    cmd = CreateVersion(owner="alice", name="hello", version_id="abc")
    with pytest.raises(VersionAlreadyExists):
        models.create_version(state, cmd, claimed_by="alice/other", now=NOW)


def test_create_version_needs_the_model() -> None:
    with pytest.raises(ModelNotFound):
        models.create_version(None, CreateVersion(owner="a", name="b", version_id="c"), claimed_by=None, now=NOW)


def test_events_round_trip_through_envelopes() -> None:
    meta = EventMetadata(actor="alice")
    for event in (ALICE, HELLO, version_created("abc")):
        envelope = to_envelope(event, meta)
        assert envelope.type == event.TYPE and envelope.stream_id == event.stream_id
        assert envelope.metadata == meta
        assert from_envelope(envelope) == event
    assert to_envelope(HELLO).stream_id == "model-alice/hello"
    assert to_envelope(ALICE).stream_id == "account-alice"


def test_tokens_are_prefixed_url_safe_and_distinct() -> None:
    minted = {tokens.new_token() for _ in range(200)}
    assert len(minted) == 200
    for token in minted:
        assert token.startswith("cwk_") and len(token) == 44
        assert all(c.isalnum() or c in "-_" for c in token[4:])
        assert tokens.looks_like_token(token)
        assert tokens.hash_token(token) != token and len(tokens.hash_token(token)) == 64
    assert not tokens.looks_like_token("r8_abc")


@pytest.mark.parametrize(
    ("model_hardware", "gpu", "expected"),
    [("cpu", False, "cpu"), ("cpu", True, "gpu"), ("gpu-t4", True, "gpu-t4"), ("gpu-t4", False, "gpu-t4")],
)
def test_version_hardware_follows_build_gpu(model_hardware: str, gpu: bool, expected: str) -> None:
    state = models.replay([HELLO.model_copy(update={"hardware": model_hardware})])
    cmd = CreateVersion(owner="alice", name="hello", version_id="abc", gpu=gpu, concurrency_max=4)
    [event] = models.create_version(state, cmd, claimed_by=None, now=NOW)
    assert isinstance(event, VersionCreated)
    assert (event.hardware, event.concurrency_max) == (expected, 4)


def test_version_concurrency_defaults_to_one_and_is_bounded() -> None:
    state = models.replay([HELLO])
    [event] = models.create_version(
        state, CreateVersion(owner="alice", name="hello", version_id="abc", concurrency_max=0), claimed_by=None, now=NOW
    )
    assert isinstance(event, VersionCreated) and event.concurrency_max == 1
    with pytest.raises(InvalidRequest):
        models.create_version(
            state, CreateVersion(owner="alice", name="hello", version_id="abd", concurrency_max=5000),
            claimed_by=None, now=NOW,
        )


def test_versions_recorded_before_concurrency_existed_read_as_one() -> None:
    data = version_created("abc").model_dump(mode="json")
    del data["concurrency_max"]
    assert VersionCreated.model_validate(data).concurrency_max == 1
