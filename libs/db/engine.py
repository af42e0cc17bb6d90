"""Async SQLAlchemy engines over psycopg 3."""

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def sqlalchemy_url(database_url: str) -> str:
    """Accept plain `postgresql://` URLs (what operators pass around) and pick the psycopg driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {database_url!r}")


def libpq_url(database_url: str) -> str:
    """The same URL in the form psycopg's own `connect()` takes."""
    return "postgresql://" + sqlalchemy_url(database_url)[len("postgresql+psycopg://") :]


def create_engine(database_url: str, *, pool_size: int = 10) -> AsyncEngine:
    # Commits wait for the disk (no `synchronous_commit = off`, even for read models): a consumer acknowledges
    # a message once its commit returns, and a commit lost in a PostgreSQL crash after that is never redelivered.
    return create_async_engine(
        sqlalchemy_url(database_url),
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per transaction on the hot path. A connection broken by a
        # database restart fails its one transaction, which callers retry (consumers redeliver, clients retry).
        pool_recycle=1800,
    )


def autocommit(engine: AsyncEngine) -> AsyncEngine:
    """The same pool in autocommit: one statement is a transaction of its own, so it needs no BEGIN and
    COMMIT/ROLLBACK round trips around it (the hot path: a prediction polled by its client, or stored as
    created)."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")
