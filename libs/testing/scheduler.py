"""Cleaning up after tests that drive the scheduler's handlers in-process."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

# What the scheduler's control loop and sweeps act on.
_PENDING = ("work", "deadlines", "data_removals")


async def forget_pending_work(engine: AsyncEngine, schema: str = "scheduler") -> None:
    """Drop the unfinished work such tests leave in the session's database.

    Tests share that database with the end-to-end stacks that run after them: a prediction left waiting (of a
    version no registry knows, on a node that no longer exists) would have those stacks' schedulers boot
    instances for it over and over, or time it out, beside the work of the test at hand.
    """
    async with engine.begin() as conn:
        for table in _PENDING:
            exists = (await conn.execute(text("SELECT to_regclass(:name)"), {"name": f"{schema}.{table}"})).scalar()
            if exists is not None:  # a stack that never started has no schema yet
                await conn.execute(text(f"DELETE FROM {schema}.{table}"))
