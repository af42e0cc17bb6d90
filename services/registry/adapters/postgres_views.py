"""Queries over the registry's read-model tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry.domain.accounts import Account, Token
from services.registry.domain.models import Model, Version

_VERSION_COLUMNS = "id, owner, name, created_at, cog_version, openapi_schema, package_key, predictor_ref, hardware"
# Members in joining order, as the aggregate keeps them.
_ACCOUNT_COLUMNS = (
    "a.username, a.type, a.name, a.created_at, a.admin,"
    " ARRAY(SELECT m.member FROM __SCHEMA__.memberships m WHERE m.organization = a.username"
    " ORDER BY m.added_at, m.member) AS members"
)


def _account(row: Any) -> Account:
    return Account(
        username=row.username,
        type=row.type,
        name=row.name,
        created_at=row.created_at,
        admin=row.admin,
        members=tuple(row.members or ()),
    )


class PostgresViews:
    def __init__(self, engine: AsyncEngine, schema: str) -> None:
        self._engine = engine
        self._schema = schema

    async def _rows(self, sql: str, params: dict[str, Any]) -> list[Any]:
        async with self._engine.connect() as conn:
            return list((await conn.execute(text(sql.replace("__SCHEMA__", self._schema)), params)).all())

    async def account_for_token(self, token_hash: str) -> tuple[Account, str] | None:
        rows = await self._rows(
            f"SELECT {_ACCOUNT_COLUMNS}, t.token_id"
            " FROM __SCHEMA__.tokens t JOIN __SCHEMA__.accounts a ON a.username = t.username"
            " WHERE t.token_hash = :h AND t.disabled_at IS NULL AND t.revoked_at IS NULL",
            {"h": token_hash},
        )
        if not rows:
            return None
        return _account(rows[0]), rows[0].token_id

    async def get_account(self, username: str) -> Account | None:
        rows = await self._rows(
            f"SELECT {_ACCOUNT_COLUMNS} FROM __SCHEMA__.accounts a WHERE a.username = :u", {"u": username}
        )
        return _account(rows[0]) if rows else None

    async def list_accounts(self) -> list[Account]:
        rows = await self._rows(f"SELECT {_ACCOUNT_COLUMNS} FROM __SCHEMA__.accounts a ORDER BY a.username", {})
        return [_account(row) for row in rows]

    async def organizations_of(self, username: str) -> list[str]:
        rows = await self._rows(
            "SELECT organization FROM __SCHEMA__.memberships WHERE member = :u ORDER BY organization", {"u": username}
        )
        return [row.organization for row in rows]

    async def list_tokens(self, username: str) -> list[Token]:
        rows = await self._rows(
            "SELECT token_id, username, name, created_at, disabled_at, revoked_at FROM __SCHEMA__.tokens"
            " WHERE username = :u ORDER BY created_at, token_id",
            {"u": username},
        )
        return [
            Token(
                id=row.token_id,
                username=row.username,
                name=row.name,
                token_hash="",
                created_at=row.created_at,
                disabled=row.disabled_at is not None,
                revoked=row.revoked_at is not None,
            )
            for row in rows
        ]

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
