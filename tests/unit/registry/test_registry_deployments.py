"""Deployments in the registry domain and its use cases, over the in-memory event log."""

import asyncio
from datetime import UTC, datetime

import pytest
from registry_fakes import FakeClock, FakeViews, InMemoryEventLog

from services.registry import handlers
from services.registry.domain import deployments
from services.registry.domain.commands import (
    CreateDeployment,
    CreateModel,
    CreateVersion,
    DeleteDeployment,
    EnsureAccount,
    UpdateDeployment,
)
from services.registry.domain.errors import (
    AccountNotFound,
    DeploymentAlreadyExists,
    DeploymentNotFound,
    InvalidRequest,
    ModelNotFound,
    VersionNotFound,
)
from services.registry.domain.events import DeploymentCreated, DeploymentDeleted, DeploymentReleased

SKUS = ("cpu", "gpu-t4", "gpu-h100")
V1, V2 = "a" * 64, "b" * 64
NOW = datetime(2026, 1, 1, tzinfo=UTC)


async def given_model_with_versions(log: InMemoryEventLog, clock: FakeClock) -> None:
    await handlers.ensure_account(EnsureAccount(username="acme", type="organization"), log.uow, clock)
    await handlers.ensure_account(EnsureAccount(username="alice"), log.uow, clock)
    await handlers.create_model(CreateModel(owner="acme", name="hello"), log.uow, clock)
    for version in (V1, V2):
        await handlers.create_version(CreateVersion(owner="acme", name="hello", version_id=version), log.uow, clock)


def create_cmd(**changes: object) -> CreateDeployment:
    fields = {
        "owner": "acme", "name": "my-app", "model": "acme/hello", "version": V1, "hardware": "cpu",
        "min_instances": 0, "max_instances": 2, "created_by": "alice",
    }
    return CreateDeployment(**{**fields, **changes})


async def test_create_records_release_one(event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews) -> None:
    await given_model_with_versions(event_log, clock)
    created = await handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS)
    release = created.current_release
    assert (created.owner, created.name, release.number, release.version) == ("acme", "my-app", 1, V1)
    configured = (release.hardware, release.min_instances, release.max_instances, release.created_by)
    assert configured == ("cpu", 0, 2, "alice")
    [event] = event_log.events("deployment-acme/my-app")
    assert isinstance(event, DeploymentCreated) and event.TYPE == "deployment.created"
    assert await handlers.get_deployment("acme", "my-app", views) == created


async def test_each_update_is_a_new_release(event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews) -> None:
    await given_model_with_versions(event_log, clock)
    await handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS)
    second = await handlers.update_deployment(
        UpdateDeployment(owner="acme", name="my-app", created_by="acme", version=V2), event_log.uow, clock, SKUS
    )
    third = await handlers.update_deployment(
        UpdateDeployment(owner="acme", name="my-app", created_by="alice", hardware="gpu-t4", max_instances=5),
        event_log.uow, clock, SKUS,
    )
    assert (second.current_release.number, second.current_release.version) == (2, V2)
    assert second.current_release.created_by == "acme"
    release = third.current_release
    assert (release.number, release.version, release.hardware, release.min_instances, release.max_instances) == (
        3, V2, "gpu-t4", 0, 5
    )
    events = event_log.events("deployment-acme/my-app")
    assert [type(e) for e in events] == [DeploymentCreated, DeploymentReleased, DeploymentReleased]
    assert [e.TYPE for e in events[1:]] == ["deployment.released"] * 2
    assert (await handlers.get_deployment("acme", "my-app", views)).current_release.number == 3


async def test_update_with_nothing_to_change_is_refused(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    await given_model_with_versions(event_log, clock)
    await handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS)
    with pytest.raises(InvalidRequest, match="at least one"):
        await handlers.update_deployment(
            UpdateDeployment(owner="acme", name="my-app", created_by="acme"), event_log.uow, clock, SKUS
        )
    assert event_log.version("deployment-acme/my-app") == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hardware": "gpu-a40"}, "hardware must be one of cpu, gpu-t4, gpu-h100"),
        ({"min_instances": -1}, "min_instances must be between 0 and 5"),
        ({"min_instances": 6, "max_instances": 10}, "min_instances must be between 0 and 5"),
        ({"max_instances": 0}, "max_instances must be between 1 and 20"),
        ({"max_instances": 21}, "max_instances must be between 1 and 20"),
        ({"min_instances": 3, "max_instances": 2}, r"min_instances \(3\) must not be greater than max_instances \(2\)"),
        ({"model": "hello"}, "model must be given as owner/name"),
        ({"name": "My App"}, "invalid deployment name"),
    ],
)
def test_create_validates_fields_by_name(changes: dict[str, object], field: str) -> None:
    from services.registry.domain.accounts import Account

    owner = Account(username="acme", type="organization", name="", created_at=NOW)
    with pytest.raises(InvalidRequest, match=field):
        deployments.create_deployment(None, create_cmd(**changes), owner=owner, model=None, hardware=SKUS, now=NOW)


async def test_create_needs_owner_model_and_version(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    with pytest.raises(AccountNotFound):
        await handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS)
    await given_model_with_versions(event_log, clock)
    with pytest.raises(ModelNotFound):
        await handlers.create_deployment(create_cmd(model="acme/nope"), event_log.uow, clock, SKUS)
    with pytest.raises(VersionNotFound):
        await handlers.create_deployment(create_cmd(version="c" * 64), event_log.uow, clock, SKUS)
    assert event_log.version("deployment-acme/my-app") == 0


async def test_update_version_must_belong_to_the_release_model(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    await given_model_with_versions(event_log, clock)
    await handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS)
    with pytest.raises(VersionNotFound):
        await handlers.update_deployment(
            UpdateDeployment(owner="acme", name="my-app", created_by="acme", version="c" * 64),
            event_log.uow, clock, SKUS,
        )
    with pytest.raises(InvalidRequest, match="min_instances"):
        await handlers.update_deployment(
            UpdateDeployment(owner="acme", name="my-app", created_by="acme", min_instances=4),
            event_log.uow, clock, SKUS,
        )


async def test_racing_creators_record_one_deployment(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    await given_model_with_versions(event_log, clock)
    results = await asyncio.gather(
        *(handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS) for _ in range(3)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, DeploymentAlreadyExists) for r in results if isinstance(r, Exception))
    assert event_log.version("deployment-acme/my-app") == 1


async def test_delete_frees_the_name_and_releases_restart(
    event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews
) -> None:
    await given_model_with_versions(event_log, clock)
    await handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS)
    await handlers.update_deployment(
        UpdateDeployment(owner="acme", name="my-app", created_by="acme", version=V2), event_log.uow, clock, SKUS
    )
    await handlers.delete_deployment(DeleteDeployment(owner="acme", name="my-app"), event_log.uow, clock)
    assert isinstance(event_log.events("deployment-acme/my-app")[-1], DeploymentDeleted)
    with pytest.raises(DeploymentNotFound):
        await handlers.get_deployment("acme", "my-app", views)
    with pytest.raises(DeploymentNotFound):
        await handlers.delete_deployment(DeleteDeployment(owner="acme", name="my-app"), event_log.uow, clock)
    with pytest.raises(DeploymentNotFound):
        await handlers.update_deployment(
            UpdateDeployment(owner="acme", name="my-app", created_by="acme", max_instances=3),
            event_log.uow, clock, SKUS,
        )
    again = await handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS)
    assert again.current_release.number == 1


async def test_list_is_limited_to_the_given_owners(
    event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews
) -> None:
    await given_model_with_versions(event_log, clock)
    await handlers.create_deployment(create_cmd(name="first"), event_log.uow, clock, SKUS)
    await handlers.create_deployment(create_cmd(name="second"), event_log.uow, clock, SKUS)
    await handlers.create_deployment(create_cmd(owner="alice", name="mine"), event_log.uow, clock, SKUS)
    listed, _ = await handlers.list_deployments(["acme"], views, cursor="", limit=0)
    assert [d.name for d in listed] == ["second", "first"]
    both, _ = await handlers.list_deployments(["alice", "acme"], views, cursor="", limit=0)
    assert [d.full_name for d in both] == ["alice/mine", "acme/second", "acme/first"]


async def test_a_version_a_deployment_runs_cannot_be_deleted(event_log: InMemoryEventLog, clock: FakeClock) -> None:
    from services.registry.domain.commands import DeleteVersion
    from services.registry.domain.errors import VersionInUse

    await given_model_with_versions(event_log, clock)
    await handlers.create_deployment(create_cmd(), event_log.uow, clock, SKUS)
    with pytest.raises(VersionInUse, match="acme/my-app"):
        await handlers.delete_version(DeleteVersion(owner="acme", name="hello", version_id=V1), event_log.uow, clock)
    await handlers.update_deployment(
        UpdateDeployment(owner="acme", name="my-app", created_by="acme", version=V2), event_log.uow, clock, SKUS
    )
    await handlers.delete_version(DeleteVersion(owner="acme", name="hello", version_id=V1), event_log.uow, clock)
    assert event_log.events("model-acme/hello")[-1].TYPE == "version.deleted"


async def test_names_that_cannot_exist_are_refused_before_any_read(
    event_log: InMemoryEventLog, clock: FakeClock, views: FakeViews
) -> None:
    with pytest.raises(InvalidRequest, match="deployment name"):
        await handlers.create_deployment(create_cmd(name="bad\x00name"), event_log.uow, clock, SKUS)
    with pytest.raises(DeploymentNotFound):
        await handlers.get_deployment("acme", "bad\x00name", views)
    with pytest.raises(DeploymentNotFound):
        await handlers.delete_deployment(DeleteDeployment(owner="acme", name="Bad Name"), event_log.uow, clock)
    assert event_log.log == []
