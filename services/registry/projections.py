"""Registry read models (accounts, tokens, models, versions), folded from the log in the writer's transaction."""

from __future__ import annotations

import json

from sqlalchemy import text

from libs.events import Envelope
from libs.eventstore import Transaction
from services.registry.domain.events import (
    EVENT_TYPES,
    AccountCreated,
    ModelCreated,
    TokenCreated,
    TokenDisabled,
    VersionCreated,
    from_envelope,
)

SCHEMA = "registry"


class RegistryProjection:
    name: str = "registry-read-models"
    tables: tuple[str, ...] = ("accounts", "tokens", "models", "versions")

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
                        f"INSERT INTO {s}.accounts (username, type, name, created_at)"
                        " VALUES (:username, :type, :name, :created_at)"
                    ),
                    e.model_dump(),
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
            case ModelCreated() as e:
                await tx.conn.execute(
                    text(
                        f"INSERT INTO {s}.models (owner, name, visibility, hardware, description, created_at)"
                        " VALUES (:owner, :name, :visibility, :hardware, :description, :created_at)"
                    ),
                    e.model_dump(),
                )
            case VersionCreated() as e:
                await self._version_created(tx, e, event.position)

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
            text(f"UPDATE {s}.models SET latest_version_id = :id WHERE owner = :owner AND name = :name"),
            {"id": e.id, "owner": e.owner, "name": e.name},
        )
