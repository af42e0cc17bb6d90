"""Model updates and deletion, version deletion, files and collections: given events, when a command, then events."""

from datetime import UTC, datetime, timedelta

import pytest

from services.registry.domain import collections, files, models
from services.registry.domain.commands import (
    CreateFile,
    DeleteFile,
    DeleteModel,
    DeleteVersion,
    PutCollection,
    UpdateModel,
)
from services.registry.domain.errors import (
    FileNotFound,
    InvalidRequest,
    ModelHasVersions,
    ModelNotFound,
    VersionNotFound,
)
from services.registry.domain.events import (
    FileCreated,
    FileDeleted,
    ModelCreated,
    ModelDeleted,
    ModelUpdated,
    VersionCreated,
    VersionDeleted,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HELLO = ModelCreated(owner="alice", name="hello", visibility="public", hardware="cpu", description="", created_at=NOW)


def version(version_id: str) -> VersionCreated:
    return VersionCreated(id=version_id, owner="alice", name="hello", cog_version="0.9", openapi_schema={},
                          package_key=version_id, predictor_ref="predict.py:Predictor", hardware="cpu", created_at=NOW)


def test_update_records_only_what_changes_and_refuses_unknown_fields() -> None:
    state = models.replay([HELLO, ModelUpdated(owner="alice", name="hello", changes={"readme": "# Hi"},
                                               updated_at=NOW)])
    assert state is not None and state.readme == "# Hi"
    cmd = UpdateModel(owner="alice", name="hello", changes={"readme": "# Hi", "description": "Greets"})
    assert models.update_model(state, cmd, NOW) == [
        ModelUpdated(owner="alice", name="hello", changes={"description": "Greets"}, updated_at=NOW)]
    with pytest.raises(InvalidRequest):
        models.update_model(state, UpdateModel(owner="alice", name="hello", changes={"visibility": "x"}), NOW)
    with pytest.raises(InvalidRequest):
        models.update_model(state, UpdateModel(owner="alice", name="hello", changes={"github_url": "ftp://x"}), NOW)
    with pytest.raises(ModelNotFound):
        models.update_model(None, cmd, NOW)


def test_a_model_with_versions_cannot_be_deleted_until_they_are() -> None:
    state = models.replay([HELLO, version("v1"), version("v2")])
    with pytest.raises(ModelHasVersions):
        models.delete_model(state, DeleteModel(owner="alice", name="hello"), NOW)
    deleted = models.delete_version(state, DeleteVersion(owner="alice", name="hello", version_id="v2"), NOW)
    assert deleted == [VersionDeleted(id="v2", owner="alice", name="hello", deleted_at=NOW)]
    after = models.replay([HELLO, version("v1"), version("v2"), *deleted])
    assert after is not None and after.latest_version_id == "v1" and list(after.versions) == ["v1"]
    with pytest.raises(VersionNotFound):
        models.delete_version(after, DeleteVersion(owner="alice", name="hello", version_id="v2"), NOW)
    empty = models.replay([HELLO, version("v1"), *deleted, VersionDeleted(id="v1", owner="alice", name="hello",
                                                                         deleted_at=NOW)])
    assert empty is not None and empty.latest_version_id is None
    assert models.delete_model(empty, DeleteModel(owner="alice", name="hello"), NOW) == [
        ModelDeleted(owner="alice", name="hello", deleted_at=NOW)]


def test_a_deleted_model_is_gone_and_its_name_free_again() -> None:
    assert models.replay([HELLO, ModelDeleted(owner="alice", name="hello", deleted_at=NOW)]) is None


CREATE = CreateFile(id="a" * 26, owner="alice", name="in.png", content_type="image/png", size=3, sha256="0" * 64,
                    metadata={"k": "v"})


def test_a_file_expires_after_its_ttl_and_ids_are_never_reused() -> None:
    [created] = files.create_file(None, CREATE, existed=False, now=NOW, ttl=timedelta(hours=24))
    assert isinstance(created, FileCreated) and created.expires_at == NOW + timedelta(hours=24)
    with pytest.raises(InvalidRequest):
        files.create_file(None, CREATE, existed=True, now=NOW, ttl=timedelta(hours=1))
    for bad in ({"id": "UPPER"}, {"name": ""}, {"name": "x" * 256}, {"sha256": "nope"}, {"owner": "bad owner"}):
        with pytest.raises(InvalidRequest):
            files.create_file(None, CREATE.model_copy(update=bad), existed=False, now=NOW, ttl=timedelta(1))


def test_deleting_a_file_twice_is_not_found() -> None:
    [created] = files.create_file(None, CREATE, existed=False, now=NOW, ttl=timedelta(hours=1))
    state = files.replay([created])
    assert files.delete_file(state, DeleteFile(id=CREATE.id), NOW) == [
        FileDeleted(id=CREATE.id, owner="alice", deleted_at=NOW)]
    with pytest.raises(FileNotFound):
        files.delete_file(files.replay([created, FileDeleted(id=CREATE.id, owner="alice", deleted_at=NOW)]),
                          DeleteFile(id=CREATE.id), NOW)


def test_a_collection_definition_is_validated_and_unchanged_ones_record_nothing() -> None:
    cmd = PutCollection(slug="text-to-image", name="Text to image", models=["a/b", "c/d", "a/b"])
    [defined] = collections.define_collection(None, cmd, NOW)
    assert defined.models == ["a/b", "c/d"]
    assert collections.define_collection(defined, cmd, NOW) == []
    for bad in ({"slug": "Bad Slug"}, {"name": " "}, {"models": ["no-slash"]}):
        with pytest.raises(InvalidRequest):
            collections.define_collection(None, cmd.model_copy(update=bad), NOW)
