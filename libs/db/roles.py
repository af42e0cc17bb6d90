"""A PostgreSQL role per service schema: each service logs in as its role and reaches its own schema only.

Used where Cogwheel runs the server itself (``cogwheel up``'s embedded PostgreSQL). Migrations still run as
the administrator; afterwards everything in a schema is handed to its role, so a service's own migrations
at start-up (nothing left to apply) and its queries run with the rights of the schema's owner, and no
service may read another's schema. An external database given by URL is used by every service as it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from libs.db.engine import libpq_url

__all__ = ["ensure_service_roles", "role_for", "url_for_role"]

# Tables (plain, partitioned, foreign), views and materialized views; sequences come after their tables.
_RELATIONS = "SELECT c.relname, c.relkind FROM pg_class c WHERE c.relnamespace = %s::regnamespace " \
             "AND c.relkind IN ('r', 'p', 'f', 'v', 'm', 'S') AND c.relowner <> %s::regrole " \
             "ORDER BY c.relkind = 'S'"
_FUNCTIONS = "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.pronamespace = %s::regnamespace " \
             "AND p.proowner <> %s::regrole"


def role_for(schema: str) -> str:
    return f"cogwheel_{schema}"


def url_for_role(database_url: str, role: str, password: str) -> str:
    """The same server and database, logged in as ``role``."""
    parts = urlsplit(database_url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    netloc = f"{quote(role, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def ensure_service_roles(admin_url: str, passwords: Mapping[str, str]) -> None:
    """Create (or update) one login role per schema in ``passwords`` and make it the owner of that schema."""
    async with await psycopg.AsyncConnection.connect(libpq_url(admin_url), autocommit=True) as conn:
        database = (await (await conn.execute("SELECT current_database()")).fetchone())[0]  # type: ignore[index]
        await conn.execute(sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC"))
        for schema, password in passwords.items():
            role = role_for(schema)
            exists = await (await conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))).fetchone()
            verb = "ALTER" if exists else "CREATE"
            await conn.execute(sql.SQL(verb + " ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)))
            await conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                sql.Identifier(database), sql.Identifier(role)))
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
                sql.Identifier(schema), sql.Identifier(role)))
            await conn.execute(
                sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), sql.Identifier(role))
            )
            await conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
            await _hand_over(conn, schema, role)


async def _hand_over(conn: psycopg.AsyncConnection, schema: str, role: str) -> None:
    """Make ``role`` the owner of what the administrator's migrations created in ``schema``."""
    for name, kind in await (await conn.execute(_RELATIONS, (schema, role))).fetchall():
        statement = {"S": "SEQUENCE", "v": "VIEW", "m": "MATERIALIZED VIEW", "f": "FOREIGN TABLE"}.get(kind, "TABLE")
        try:
            await conn.execute(sql.SQL("ALTER " + statement + " {}.{} OWNER TO {}").format(
                sql.Identifier(schema), sql.Identifier(name), sql.Identifier(role)))
        except psycopg.errors.FeatureNotSupported:
            pass  # a sequence that belongs to a table follows its table
    for (signature,) in await (await conn.execute(_FUNCTIONS, (schema, role))).fetchall():
        await conn.execute(sql.SQL("ALTER ROUTINE " + signature + " OWNER TO {}").format(sql.Identifier(role)))
