"""Create and drop databases on a running PostgreSQL server (used at startup and by test fixtures)."""

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

__all__ = ["create_database", "drop_database", "ensure_database", "with_database"]


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _maintenance_url(url: str) -> str:
    return with_database(url, "postgres")


def ensure_database(url: str, dbname: str) -> None:
    """Create ``dbname`` on the server behind ``url`` unless it already exists."""
    with psycopg.connect(_maintenance_url(url), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))


def create_database(url: str, prefix: str = "cogwheel_test") -> str:
    """Create a fresh, uniquely named database on the server behind ``url`` and return its URL."""
    dbname = f"{prefix}_{uuid.uuid4().hex[:12]}"
    ensure_database(url, dbname)
    return with_database(url, dbname)


def drop_database(url: str) -> None:
    """Drop the database ``url`` points at, disconnecting its sessions first."""
    dbname = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_maintenance_url(url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
