"""Queries over the registry's read-model tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry.domain.accounts import Account
from services.registry.domain.models import Model, Version

_VERSION_COLUMNS = "id, owner, name, created_at, cog_version, openapi_schema, package_key, predictor_ref, hardware, concurrency_max"


class PostgresViews:
    def __init__(self, engine: AsyncEngine, schema: str) -> None:
        self._engine = engine
        self._schema = schema

    async def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(text(sql.replace("__SCHEMA__", self._schema)), params)).all())

    async def account_for_token(self, token_hash: str) -> tuple[Account, str] | None:
        rows = await self._rows(
            "SELECT a.username, a.type, a.name, a.created_at, t.token_id"
            " FROM __SCHEMA__.tokens t JOIN __SCHEMA__.accounts a ON a.username = t.username"
            " WHERE t.token_hash = :h AND t.disabled_at IS NULL",
            {"h": token_hash},
        )
        if not rows:
            return None
        row = rows[0]
        account = Account(username=row.username, type=row.type, name=row.name, created_at=row.created_at)
        return account, row.token_id

    async def get_model(self, owner: str, name: str) -> Model | None:
        rows = await self._rows(
            "SELECT owner, name, visibility, hardware, description, created_at, latest_version_id"
            " FROM __SCHEMA__.models WHERE owner = :owner AND name = :name",
            {"owner": owner, "name": name},
        )
        return Model.model_validate(rows[0]._asdict()) if rows else None

    async def get_version(self, version_id: str) -> Version | None:
        rows = await self._rows(
            f"SELECT {_VERSION_COLUMNS} FROM __SCHEMA__.versions WHERE id = :id", {"id": version_id}
        )
        return Version.model_validate(rows[0]._asdict()) if rows else None

    async def list_versions(self, owner: str, name: str) -> list[Version]:
        rows = await self._rows(
            f"SELECT {_VERSION_COLUMNS} FROM __SCHEMA__.versions"
            " WHERE owner = :owner AND name = :name ORDER BY position DESC",
            {"owner": owner, "name": name},
        )
        return [Version.model_validate(row._asdict()) for row in rows]
