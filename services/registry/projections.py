"""Registry read models (accounts, tokens, models, versions), folded from the log in the writer's transaction."""

from __future__ import annotations

import json

from sqlalchemy import text

from libs.events import Envelope
from libs.eventstore import Transaction
from services.registry.domain.events import (
    EVENT_TYPES,
    MODEL_DETAIL_FIELDS,
    AccountCreated,
    CollectionDefined,
    DeploymentCreated,
    DeploymentDeleted,
    DeploymentReleased,
    FileCreated,
    FileDeleted,
    MembershipAdded,
    MembershipRemoved,
    ModelCreated,
    ModelDeleted,
    ModelUpdated,
    TokenCreated,
    TokenDisabled,
    TokenEnabled,
    TokenRevoked,
    VersionCreated,
    VersionDeleted,
    from_envelope,
)

SCHEMA = "registry"


class RegistryProjection:
    name: str = "registry-read-models"
    tables: tuple[str, ...] = ("accounts", "memberships", "tokens", "models", "versions", "files", "collections",
                             "deployments")

    def __init__(self, schema: str = SCHEMA) -> None:
        self.schema = schema

    async def apply(self, tx: Transaction, event: Envelope) -> None:
        if event.type not in EVENT_TYPES:
            return
        s = self.schema
        match from_envelope(event):
            case AccountCreated() as e:
                await tx.conn.execute(
                    text(
                        f"INSERT INTO {s}.accounts (username, type, name, created_at, admin)"
                        " VALUES (:username, :type, :name, :created_at, :admin)"
                    ),
                    e.model_dump(),
                )
            case MembershipAdded() as e:
                await tx.conn.execute(
                    text(
                        f"INSERT INTO {s}.memberships (organization, member, added_at)"
                        " VALUES (:organization, :member, :added_at)"
                    ),
                    e.model_dump(),
                )
            case MembershipRemoved() as e:
                await tx.conn.execute(
                    text(f"DELETE FROM {s}.memberships WHERE organization = :organization AND member = :member"),
                    {"organization": e.organization, "member": e.member},
                )
            case TokenCreated() as e:
                await tx.conn.execute(
                    text(
                        f"INSERT INTO {s}.tokens (token_id, username, name, token_hash, created_at)"
                        " VALUES (:token_id, :username, :name, :token_hash, :created_at)"
                    ),
                    e.model_dump(),
                )
            case TokenDisabled() as e:
                await tx.conn.execute(
                    text(f"UPDATE {s}.tokens SET disabled_at = :disabled_at WHERE token_id = :token_id"),
                    e.model_dump(exclude={"username"}),
                )
            case TokenEnabled() as e:
                await tx.conn.execute(
                    text(f"UPDATE {s}.tokens SET disabled_at = NULL WHERE token_id = :token_id"),
                    {"token_id": e.token_id},
                )
            case TokenRevoked() as e:
                await tx.conn.execute(
                    text(f"UPDATE {s}.tokens SET revoked_at = :revoked_at WHERE token_id = :token_id"),
                    e.model_dump(exclude={"username"}),
                )
            case ModelCreated() as e:
                await tx.conn.execute(
                    text(
                        f"INSERT INTO {s}.models (owner, name, visibility, hardware, description, created_at,"
                        " github_url, paper_url, license_url, cover_image_url, listed_at)"
                        " VALUES (:owner, :name, :visibility, :hardware, :description, :created_at,"
                        " :github_url, :paper_url, :license_url, :cover_image_url, :created_at)"
                    ),
                    e.model_dump(),
                )
            case VersionCreated() as e:
                await self._version_created(tx, e, event.position)
            case ModelUpdated() as e:
                changes = {key: value for key, value in e.changes.items() if key in MODEL_DETAIL_FIELDS}
                if changes:
                    assignments = ", ".join(f"{key} = :{key}" for key in changes)
                    await tx.conn.execute(
                        text(f"UPDATE {s}.models SET {assignments} WHERE owner = :owner AND name = :name"),
                        {**changes, "owner": e.owner, "name": e.name},
                    )
            case ModelDeleted() as e:
                await tx.conn.execute(
                    text(f"DELETE FROM {s}.models WHERE owner = :owner AND name = :name"),
                    {"owner": e.owner, "name": e.name},
                )
            case VersionDeleted() as e:
                await tx.conn.execute(text(f"DELETE FROM {s}.versions WHERE id = :id"), {"id": e.id})
                await self._refresh_latest(tx, e.owner, e.name)
            case FileCreated() as e:
                await tx.conn.execute(
                    text(
                        f"INSERT INTO {s}.files (id, owner, name, content_type, size, sha256, md5, metadata,"
                        " created_at, expires_at) VALUES (:id, :owner, :name, :content_type, :size, :sha256, :md5,"
                        " CAST(:metadata AS jsonb), :created_at, :expires_at)"
                    ),
                    {**e.model_dump(), "metadata": json.dumps(e.metadata)},
                )
            case FileDeleted() as e:
                await tx.conn.execute(text(f"DELETE FROM {s}.files WHERE id = :id"), {"id": e.id})
            case CollectionDefined() as e:
                await tx.conn.execute(
                    text(
                        f"INSERT INTO {s}.collections (slug, name, description, full_description, models, defined_at)"
                        " VALUES (:slug, :name, :description, :full_description, CAST(:models AS jsonb), :defined_at)"
                        " ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,"
                        " full_description = EXCLUDED.full_description, models = EXCLUDED.models,"
                        " defined_at = EXCLUDED.defined_at"
                    ),
                    {**e.model_dump(), "models": json.dumps(e.models)},
                )
            case DeploymentCreated() as e:
                await tx.conn.execute(
                    text(
                        f"INSERT INTO {s}.deployments (owner, name, created_at, release_number, model, version,"
                        " hardware, min_instances, max_instances, released_by, released_at) VALUES (:owner, :name,"
                        " :created_at, :number, :model, :version, :hardware, :min_instances, :max_instances,"
                        " :created_by, :created_at)"
                    ),
                    e.model_dump(),
                )
            case DeploymentReleased() as e:
                await tx.conn.execute(
                    text(
                        f"UPDATE {s}.deployments SET release_number = :number, model = :model, version = :version,"
                        " hardware = :hardware, min_instances = :min_instances, max_instances = :max_instances,"
                        " released_by = :created_by, released_at = :created_at WHERE owner = :owner AND name = :name"
                    ),
                    e.model_dump(),
                )
            case DeploymentDeleted() as e:
                await tx.conn.execute(
                    text(f"DELETE FROM {s}.deployments WHERE owner = :owner AND name = :name"),
                    {"owner": e.owner, "name": e.name},
                )

    async def _refresh_latest(self, tx: Transaction, owner: str, name: str) -> None:
        newest = (
            f"FROM {self.schema}.versions WHERE owner = :owner AND name = :name ORDER BY position DESC LIMIT 1"
        )
        await tx.conn.execute(
            text(
                f"UPDATE {self.schema}.models m SET latest_version_id = (SELECT id {newest}),"
                f" listed_at = COALESCE((SELECT created_at {newest}), m.created_at)"
                " WHERE m.owner = :owner AND m.name = :name"
            ),
            {"owner": owner, "name": name},
        )

    async def _version_created(self, tx: Transaction, e: VersionCreated, position: int | None) -> None:
        s = self.schema
        row = {**e.model_dump(), "openapi_schema": json.dumps(e.openapi_schema), "position": position or 0}
        await tx.conn.execute(
            text(
                f"INSERT INTO {s}.versions (id, owner, name, created_at, cog_version, openapi_schema,"
                " package_key, predictor_ref, hardware, concurrency_max, position) VALUES (:id, :owner, :name,"
                " :created_at, :cog_version, CAST(:openapi_schema AS jsonb), :package_key, :predictor_ref, :hardware,"
                " :concurrency_max, :position)"
            ),
            row,
        )
        await tx.conn.execute(
            text(
                f"UPDATE {s}.models SET latest_version_id = :id, listed_at = :created_at"
                " WHERE owner = :owner AND name = :name"
            ),
            {"id": e.id, "owner": e.owner, "name": e.name, "created_at": e.created_at},
        )
