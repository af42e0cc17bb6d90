"""Hot-path statements straight on psycopg (`libs.db.statements`) against a real PostgreSQL: parameters as
SQLAlchemy writes them, connections reused, and a database that dropped its connections costs one statement."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import psycopg
import pytest

from libs.db import statements as statements_module
from libs.db.engine import libpq_url
from libs.db.statements import Statements, positional

pytestmark = pytest.mark.integration


def test_parameters_become_numbered_placeholders_and_casts_and_percent_signs_stay() -> None:
    assert positional("SELECT CAST(:v AS jsonb), x::text FROM t WHERE a LIKE '5%' AND b = :b OR c = :v") == (
        "SELECT CAST($1 AS jsonb), x::text FROM t WHERE a LIKE '5%' AND b = $2 OR c = $1", ("v", "b"))


async def test_a_parameter_used_twice_a_percent_sign_and_a_long_batch_statement(statements: Statements) -> None:
    row = await statements.fetchone("SELECT CAST(:n AS int) + CAST(:n AS int) AS twice, '5%' AS percent", {"n": 21})
    assert (row.twice, row.percent) == (42, "5%")
    # Longer than psycopg's own cache of parsed statements (4 KiB, 50 parameters), as a batch's write is.
    values = ", ".join(f"(CAST(:v{i} AS int))" for i in range(300))
    rows = await statements.fetch(f"SELECT sum(x) AS total FROM (VALUES {values}) AS t(x)",
                                  {f"v{i}": i for i in range(300)})
    assert rows[0].total == sum(range(300))


async def test_a_missing_parameter_is_refused_before_anything_is_sent(statements: Statements) -> None:
    with pytest.raises(KeyError, match="b"):
        await statements.execute("SELECT CAST(:a AS int), CAST(:b AS int)", {"a": 1})


@pytest.fixture
async def statements(database_url: str) -> AsyncIterator[Statements]:
    pool = Statements(database_url, max_size=3)
    yield pool
    await pool.close()


@pytest.fixture
async def table(database_url: str) -> AsyncIterator[str]:
    name = f"statements_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as conn:
        await conn.execute(f"CREATE TABLE {name} (id text PRIMARY KEY, body jsonb)")
        yield name
        await conn.execute(f"DROP TABLE {name}")


async def test_rows_come_back_named_and_a_statement_error_keeps_the_connection(statements: Statements,
                                                                             table: str) -> None:
    await statements.execute(f"INSERT INTO {table} VALUES (:id, CAST(:body AS jsonb))", {"id": "a", "body": '{"x": 1}'})
    row = await statements.fetchone(f"SELECT id, body, pg_backend_pid() AS pid FROM {table} WHERE id = :id",
                                    {"id": "a"})
    assert (row.id, row.body) == ("a", {"x": 1})
    with pytest.raises(psycopg.errors.UniqueViolation):
        await statements.execute(f"INSERT INTO {table} VALUES (:id, NULL)", {"id": "a"})
    again = await statements.fetch("SELECT pg_backend_pid() AS pid")
    assert again[0].pid == row.pid  # the same connection, still usable after the statement's own error
    assert await statements.fetchone(f"SELECT id FROM {table} WHERE id = 'missing'") is None


async def test_a_serialization_failure_keeps_the_connection_and_its_prepared_statements(
    statements: Statements,
) -> None:
    """A serialization failure is an OperationalError, as a lost connection is; unlike one it leaves the
    connection (and every idle one) usable, so an expected conflict does not cost reconnecting."""
    first = await statements.fetchone("SELECT pg_backend_pid() AS pid")
    with pytest.raises(psycopg.errors.SerializationFailure):
        await statements.execute(
            "DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")
    again = await statements.fetchone("SELECT pg_backend_pid() AS pid")
    assert again.pid == first.pid


async def test_connections_dropped_by_the_database_cost_one_statement(statements: Statements,
                                                                      database_url: str) -> None:
    # Three connections in use at once, then idle in the pool.
    pids = {row[0].pid for row in await asyncio.gather(*(
        statements.fetch("SELECT pg_backend_pid() AS pid, pg_sleep(0.05)") for _ in range(3)))}
    assert len(pids) == 3
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (list(pids),))
    with pytest.raises(psycopg.OperationalError):
        await statements.fetch("SELECT 1 AS one")
    # The other idle connections went with the one that failed: the next statement connects anew.
    fresh = await statements.fetchone("SELECT pg_backend_pid() AS pid")
    assert fresh.pid not in pids


async def test_a_closed_pool_refuses_statements(statements: Statements) -> None:
    assert (await statements.fetchone("SELECT 1 AS one")).one == 1
    await statements.close()
    with pytest.raises(psycopg.InterfaceError):
        await statements.fetch("SELECT 1")


async def test_a_transaction_commits_together_or_not_at_all(statements: Statements, table: str) -> None:
    async with statements.transaction() as tx:
        await tx.execute(f"INSERT INTO {table} VALUES ('t1', NULL)")
        await tx.execute(f"INSERT INTO {table} VALUES ('t2', NULL)")
        pid = (await tx.fetchone("SELECT pg_backend_pid() AS pid")).pid
    with pytest.raises(RuntimeError):
        async with statements.transaction() as tx:
            await tx.execute(f"INSERT INTO {table} VALUES ('t3', NULL)")
            raise RuntimeError("the caller changed its mind")
    assert [row.id for row in await statements.fetch(f"SELECT id FROM {table} ORDER BY id")] == ["t1", "t2"]
    # The rolled-back transaction's connection was idle again, so it was kept.
    assert (await statements.fetchone("SELECT pg_backend_pid() AS pid")).pid == pid


async def test_connections_idle_a_while_are_checked_so_a_restart_costs_no_statement(
        statements: Statements, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    pids = {row[0].pid for row in await asyncio.gather(*(
        statements.fetch("SELECT pg_backend_pid() AS pid, pg_sleep(0.05)") for _ in range(3)))}
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url), autocommit=True) as admin:
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (list(pids),))
    monkeypatch.setattr(statements_module, "CHECK_IDLE_AFTER", 0.0)  # as if they had sat idle a while
    fresh = await statements.fetchone("SELECT pg_backend_pid() AS pid")
    assert fresh.pid not in pids


async def test_statements_whose_loss_costs_nothing_do_not_wait_for_the_disk(database_url: str) -> None:
    shortcut = Statements(database_url, max_size=1, synchronous_commit=False)
    durable = Statements(database_url, max_size=1)
    try:
        # Set by the connection itself (whatever the server's own setting, which test servers turn off too).
        query = "SELECT setting, source FROM pg_settings WHERE name = 'synchronous_commit'"
        assert tuple(await shortcut.fetchone(query)) == ("off", "client")
        assert (await durable.fetchone(query)).source != "client"
    finally:
        await shortcut.close()
        await durable.close()
