"""Queries over the registry's read-model tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry.adapters.cursors import decode_cursor, encode_cursor
from services.registry.domain.accounts import Account, Token
from services.registry.domain.collections import Collection
from services.registry.domain.deployments import Deployment, Release
from services.registry.domain.errors import InvalidRequest
from services.registry.domain.files import File
from services.registry.domain.models import Model, Version

_VERSION_FIELDS = (
    "id", "owner", "name", "created_at", "cog_version", "openapi_schema", "package_key", "predictor_ref", "hardware",
    "concurrency_max",
)
_VERSION_COLUMNS = ", ".join(_VERSION_FIELDS)
_MODEL_FIELDS = (
    "owner", "name", "visibility", "hardware", "description", "created_at", "latest_version_id",
    "github_url", "paper_url", "license_url", "cover_image_url", "weights_url", "readme",
)
# A model row with its latest version's columns prefixed `v_`.
_MODEL_SELECT = (
    "SELECT " + ", ".join(f"m.{field}" for field in _MODEL_FIELDS) + ", m.listed_at, "
    + ", ".join(f"v.{field} AS v_{field}" for field in _VERSION_FIELDS)
    + " FROM __SCHEMA__.models m LEFT JOIN __SCHEMA__.versions v ON v.id = m.latest_version_id"
)
_SORT_COLUMNS = {"latest_version_created_at": "listed_at", "model_created_at": "created_at"}
_FILE_COLUMNS = "id, owner, name, content_type, size, sha256, md5, metadata, created_at, expires_at"
_COLLECTION_COLUMNS = "slug, name, description, full_description, models"
_DEPLOYMENT_COLUMNS = (
    "owner, name, created_at, release_number, model, version, hardware, min_instances, max_instances,"
    " released_by, released_at"
)


def _deployment(row: Any) -> Deployment:
    return Deployment(
        owner=row.owner,
        name=row.name,
        created_at=row.created_at,
        current_release=Release(
            number=row.release_number,
            model=row.model,
            version=row.version,
            hardware=row.hardware,
            min_instances=row.min_instances,
            max_instances=row.max_instances,
            created_by=row.released_by,
            created_at=row.released_at,
        ),
    )


def _like(query: str) -> str:
    if "\x00" in query:
        # PostgreSQL text cannot hold NUL; refuse it as a bad query rather than fail the call.
        raise InvalidRequest("the search query must not contain NUL characters")
    escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _model(row: Any) -> Model:
    values = row._asdict()
    model = Model.model_validate({field: values[field] for field in _MODEL_FIELDS})
    if values["v_id"] is None:
        return model
    latest = Version.model_validate({field: values[f"v_{field}"] for field in _VERSION_FIELDS})
    return model.model_copy(update={"versions": {latest.id: latest}})


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
        """The model with its latest version (the only one in `versions`)."""
        rows = await self._rows(
            f"{_MODEL_SELECT} WHERE m.owner = :owner AND m.name = :name", {"owner": owner, "name": name}
        )
        return _model(rows[0]) if rows else None

    async def list_models(
        self, *, cursor: str, limit: int, sort_by: str, sort_direction: str, query: str,
        owners: list[str] | None = None,
    ) -> tuple[list[Model], str]:
        """Public models (with `owners`: every model of those owners, private ones too), one page; the second
        item is the next page's cursor ("" on the last page)."""
        if query:
            return await self._search_models(query, cursor, limit)
        column = _SORT_COLUMNS.get(sort_by or "latest_version_created_at")
        direction = (sort_direction or "desc").lower()
        if column is None or direction not in ("asc", "desc"):
            raise InvalidRequest("sort_by must be model_created_at or latest_version_created_at, "
                                 "sort_direction asc or desc")
        sql = f"{_MODEL_SELECT} WHERE " + ("m.owner = ANY(:owners)" if owners else "m.visibility = 'public'")
        params: dict[str, Any] = {"limit": limit + 1}
        if owners:
            params["owners"] = list(owners)
        if cursor:
            at, owner, name = decode_cursor(cursor, 3)
            try:
                params.update(at=datetime.fromisoformat(str(at)), owner=str(owner), name=str(name))
            except ValueError:
                raise InvalidRequest("invalid pagination cursor") from None
            sql += f" AND (m.{column}, m.owner, m.name) {'<' if direction == 'desc' else '>'} (:at, :owner, :name)"
        order = direction.upper()
        sql += f" ORDER BY m.{column} {order}, m.owner {order}, m.name {order} LIMIT :limit"
        rows = await self._rows(sql, params)
        page = rows[:limit]
        next_cursor = ""
        if len(rows) > limit:
            last = page[-1]
            next_cursor = encode_cursor([getattr(last, column).isoformat(), last.owner, last.name])
        return [_model(row) for row in page], next_cursor

    async def _search_models(self, query: str, cursor: str, limit: int) -> tuple[list[Model], str]:
        """Relevance: the name, then the owner/name, then the description matches; paged by offset."""
        offset = int(decode_cursor(cursor, 1)[0]) if cursor else 0
        if offset < 0:
            raise InvalidRequest("invalid pagination cursor")
        rows = await self._rows(
            f"{_MODEL_SELECT} WHERE m.visibility = 'public' AND (m.name ILIKE :q OR (m.owner || '/' || m.name) ILIKE :q"
            " OR m.description ILIKE :q)"
            " ORDER BY (lower(m.name) = lower(:exact)) DESC, (m.name ILIKE :q) DESC,"
            " ((m.owner || '/' || m.name) ILIKE :q) DESC, m.listed_at DESC, m.owner, m.name"
            " LIMIT :limit OFFSET :offset",
            {"q": _like(query), "exact": query, "limit": limit + 1, "offset": offset},
        )
        next_cursor = encode_cursor([offset + limit]) if len(rows) > limit else ""
        return [_model(row) for row in rows[:limit]], next_cursor

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

    async def get_file(self, file_id: str) -> File | None:
        """Expired files are gone as far as readers are concerned."""
        rows = await self._rows(
            f"SELECT {_FILE_COLUMNS} FROM __SCHEMA__.files WHERE id = :id AND expires_at > now()", {"id": file_id}
        )
        return File.model_validate(rows[0]._asdict()) if rows else None

    async def expired_file_ids(self, *, limit: int) -> list[str]:
        """Files past their `expires_at` that are still recorded, oldest first."""
        rows = await self._rows(
            "SELECT id FROM __SCHEMA__.files WHERE expires_at <= now() ORDER BY expires_at LIMIT :limit",
            {"limit": limit},
        )
        return [str(row.id) for row in rows]

    async def list_files(self, owner: str, *, cursor: str, limit: int) -> tuple[list[File], str]:
        """Newest first."""
        sql = f"SELECT {_FILE_COLUMNS} FROM __SCHEMA__.files WHERE owner = :owner AND expires_at > now()"
        params: dict[str, Any] = {"owner": owner, "limit": limit + 1}
        if cursor:
            at, file_id = decode_cursor(cursor, 2)
            try:
                params.update(at=datetime.fromisoformat(str(at)), id=str(file_id))
            except ValueError:
                raise InvalidRequest("invalid pagination cursor") from None
            sql += " AND (created_at, id) < (:at, :id)"
        rows = await self._rows(sql + " ORDER BY created_at DESC, id DESC LIMIT :limit", params)
        files = [File.model_validate(row._asdict()) for row in rows[:limit]]
        next_cursor = encode_cursor([files[-1].created_at.isoformat(), files[-1].id]) if len(rows) > limit else ""
        return files, next_cursor

    async def get_collection(self, slug: str) -> Collection | None:
        rows = await self._rows(f"SELECT {_COLLECTION_COLUMNS} FROM __SCHEMA__.collections WHERE slug = :slug",
                                {"slug": slug})
        return Collection.model_validate(rows[0]._asdict()) if rows else None

    async def list_collections(self, *, cursor: str, limit: int, query: str) -> tuple[list[Collection], str]:
        """By slug."""
        sql = f"SELECT {_COLLECTION_COLUMNS} FROM __SCHEMA__.collections WHERE true"
        params: dict[str, Any] = {"limit": limit + 1}
        if query:
            sql += " AND (slug ILIKE :q OR name ILIKE :q OR description ILIKE :q)"
            params["q"] = _like(query)
        if cursor:
            params["after"] = str(decode_cursor(cursor, 1)[0])
            sql += " AND slug > :after"
        rows = await self._rows(sql + " ORDER BY slug LIMIT :limit", params)
        collections = [Collection.model_validate(row._asdict()) for row in rows[:limit]]
        next_cursor = encode_cursor([collections[-1].slug]) if len(rows) > limit else ""
        return collections, next_cursor

    async def get_deployment(self, owner: str, name: str) -> Deployment | None:
        rows = await self._rows(
            f"SELECT {_DEPLOYMENT_COLUMNS} FROM __SCHEMA__.deployments WHERE owner = :owner AND name = :name",
            {"owner": owner, "name": name},
        )
        return _deployment(rows[0]) if rows else None

    async def list_deployments(
        self, owners: list[str] | None, *, cursor: str, limit: int
    ) -> tuple[list[Deployment], str]:
        """Newest first, by creation (a new release does not move a deployment); ``owners`` None: everyone's."""
        sql = f"SELECT {_DEPLOYMENT_COLUMNS} FROM __SCHEMA__.deployments WHERE (owner = ANY(:owners) OR :every)"
        params: dict[str, Any] = {"owners": owners or [], "every": owners is None, "limit": limit + 1}
        if cursor:
            at, owner, name = decode_cursor(cursor, 3)
            try:
                params.update(at=datetime.fromisoformat(str(at)), owner=str(owner), name=str(name))
            except ValueError:
                raise InvalidRequest("invalid pagination cursor") from None
            if "\x00" in params["owner"] + params["name"]:
                raise InvalidRequest("invalid pagination cursor")
            sql += " AND (created_at, owner, name) < (:at, :owner, :name)"
        rows = await self._rows(sql + " ORDER BY created_at DESC, owner DESC, name DESC LIMIT :limit", params)
        found = [_deployment(row) for row in rows[:limit]]
        next_cursor = ""
        if len(rows) > limit:
            last = found[-1]
            next_cursor = encode_cursor([last.created_at.isoformat(), last.owner, last.name])
        return found, next_cursor
