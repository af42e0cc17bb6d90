"""Versioned SQL migrations, one schema per service, applied under an advisory lock.

Plain ordered `NNNN_name.sql` files instead of Alembic: every schema starts with the same event-store tables
(templated with the schema name) and services only add a few tables each, so a diffing tool buys nothing
while a per-schema Alembic environment would be six copies of configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg

from libs.db.engine import libpq_url

EVENTSTORE_MIGRATIONS = Path(__file__).resolve().parents[1] / "eventstore" / "migrations"
SERVICES_DIR = Path(__file__).resolve().parents[2] / "services"
SCHEMA_PLACEHOLDER = "__SCHEMA__"
_LOCK_KEY = 7_301_245_022  # arbitrary, shared by every migrating process


class MigrationError(RuntimeError):
    """A migration failed; the message names the schema and the file."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str


def load_migrations(schema: str, service_dir: Path | None) -> list[Migration]:
    files = sorted(EVENTSTORE_MIGRATIONS.glob("*.sql"))
    migrations = [Migration(f"eventstore/{f.name}", f.read_text()) for f in files]
    if service_dir is not None and service_dir.is_dir():
        migrations += [Migration(f.name, f.read_text()) for f in sorted(service_dir.glob("*.sql"))]
    return [Migration(m.name, m.sql.replace(SCHEMA_PLACEHOLDER, schema)) for m in migrations]


async def migrate(database_url: str, schema: str, service_dir: Path | None = None) -> list[str]:
    """Apply what is missing in `schema`; returns the names applied now."""
    if not schema.isidentifier():
        raise MigrationError(f"invalid schema name {schema!r}")
    applied_now: list[str] = []
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            # Only when missing: a service whose role owns its schema may not create schemas.
            cursor = await conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            if await cursor.fetchone() is None:
                await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cursor = await conn.execute(f"SELECT name FROM {schema}.schema_migrations")
            done = {row[0] for row in await cursor.fetchall()}
            for migration in load_migrations(schema, service_dir):
                if migration.name in done:
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(migration.sql.encode())
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {migration.name} of schema {schema} failed: {str(exc).strip()}"
                    ) from exc
                await conn.execute(
                    f"INSERT INTO {schema}.schema_migrations (name) VALUES (%s)", (migration.name,)
                )
                applied_now.append(migration.name)
    return applied_now


def service_schemas() -> dict[str, Path]:
    """Every service that owns a schema: the folder name is the schema name."""
    return {
        path.parent.name: path
        for path in sorted(SERVICES_DIR.glob("*/migrations"))
        if path.is_dir()
    }


async def migrate_all(database_url: str) -> dict[str, list[str]]:
    return {
        schema: await migrate(database_url, schema, path)
        for schema, path in service_schemas().items()
    }
