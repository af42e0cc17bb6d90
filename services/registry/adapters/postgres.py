"""The registry's unit of work over the PostgreSQL event store, with projections in the same transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from libs.events import EventMetadata
from libs.eventstore import ConcurrencyError, EventStore, Transaction
from libs.eventstore.projections import Projection
from services.registry.domain.events import RegistryEvent, from_envelope, to_envelope
from services.registry.ports import UnitOfWorkFactory


class PostgresUnitOfWork:
    def __init__(
        self, tx: Transaction, schema: str, projections: Sequence[Projection], metadata: EventMetadata
    ) -> None:
        self._tx = tx
        self._schema = schema
        self._projections = projections
        self._metadata = metadata

    async def load(self, stream_id: str) -> tuple[list[RegistryEvent], int]:
        stored = await self._tx.read_stream(stream_id)
        version = stored[-1].stream_version if stored else 0
        return [from_envelope(event) for event in stored], version

    async def append(self, stream_id: str, events: Sequence[RegistryEvent], expected_version: int) -> None:
        if not events:
            return
        envelopes = [to_envelope(event, self._metadata) for event in events]
        stored = await self._tx.append(stream_id, envelopes, expected_version)
        try:
            async with self._tx.conn.begin_nested():
                for event in stored:
                    for projection in self._projections:
                        await projection.apply(self._tx, event)
        except IntegrityError as exc:
            # A read-model uniqueness clash (a version id claimed by another model a moment ago) is a
            # lost race like any other: retrying reloads and decides again with the winner visible.
            raise ConcurrencyError(stream_id, expected_version) from exc

    async def version_owner(self, version_id: str) -> str | None:
        result = await self._tx.conn.execute(
            text(f"SELECT owner || '/' || name FROM {self._schema}.versions WHERE id = :id"),
            {"id": version_id},
        )
        return result.scalar()

    async def token_owner(self, token_id: str) -> str | None:
        result = await self._tx.conn.execute(
            text(f"SELECT username FROM {self._schema}.tokens WHERE token_id = :id"), {"id": token_id}
        )
        return result.scalar()


    async def deployments_running(self, version_id: str) -> list[str]:
        result = await self._tx.conn.execute(
            text(f"SELECT owner || '/' || name FROM {self._schema}.deployments WHERE version = :id ORDER BY 1"),
            {"id": version_id},
        )
        return list(result.scalars())


def unit_of_work_factory(store: EventStore, projections: Sequence[Projection]) -> UnitOfWorkFactory:
    @asynccontextmanager
    async def open_unit_of_work(metadata: EventMetadata) -> AsyncIterator[PostgresUnitOfWork]:
        async with store.transaction() as tx:
            yield PostgresUnitOfWork(tx, store.schema, projections, metadata)

    return open_unit_of_work
