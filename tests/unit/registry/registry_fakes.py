"""In-memory fakes of the registry's ports: an event log with optimistic concurrency, views folded from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from libs.events import Envelope, EventMetadata
from libs.eventstore import ConcurrencyError
from services.registry.domain import accounts, deployments, models
from services.registry.domain.accounts import Account, Token
from services.registry.domain.deployments import Deployment
from services.registry.domain.events import RegistryEvent, TokenCreated, VersionCreated, from_envelope, to_envelope
from services.registry.domain.models import Model, Version


class FakeClock:
    """Ticks one second per reading, so ordering by time is unambiguous."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self.current = start

    def now(self) -> datetime:
        self.current += timedelta(seconds=1)
        return self.current


class InMemoryEventLog:
    def __init__(self) -> None:
        self.streams: dict[str, list[Envelope]] = {}
        self.log: list[Envelope] = []

    def version(self, stream_id: str) -> int:
        return len(self.streams.get(stream_id, []))

    def events(self, stream_id: str) -> list[RegistryEvent]:
        return [from_envelope(e) for e in self.streams.get(stream_id, [])]

    def all_events(self) -> list[RegistryEvent]:
        return [from_envelope(e) for e in self.log]

    def commit(self, staged: list[tuple[str, int, list[Envelope]]]) -> None:
        for stream_id, expected, _ in staged:
            if self.version(stream_id) != expected:
                raise ConcurrencyError(stream_id, expected, self.version(stream_id))
        for stream_id, _, envelopes in staged:
            stream = self.streams.setdefault(stream_id, [])
            for envelope in envelopes:
                stored = envelope.model_copy(update={"stream_version": len(stream) + 1, "position": len(self.log) + 1})
                stream.append(stored)
                self.log.append(stored)

    @asynccontextmanager
    async def uow(self, metadata: EventMetadata) -> AsyncIterator[InMemoryUnitOfWork]:
        work = InMemoryUnitOfWork(self, metadata)
        yield work
        self.commit(work.staged)


class InMemoryUnitOfWork:
    def __init__(self, log: InMemoryEventLog, metadata: EventMetadata) -> None:
        self._log = log
        self._metadata = metadata
        self.staged: list[tuple[str, int, list[Envelope]]] = []

    async def load(self, stream_id: str) -> tuple[list[RegistryEvent], int]:
        # Yield to the loop so concurrent units of work interleave as they would against a database.
        await asyncio.sleep(0)
        return self._log.events(stream_id), self._log.version(stream_id)

    async def append(self, stream_id: str, events: Sequence[RegistryEvent], expected_version: int) -> None:
        if events:
            self.staged.append((stream_id, expected_version, [to_envelope(e, self._metadata) for e in events]))

    async def version_owner(self, version_id: str) -> str | None:
        for event in self._log.all_events():
            if isinstance(event, VersionCreated) and event.id == version_id:
                return f"{event.owner}/{event.name}"
        return None

    async def token_owner(self, token_id: str) -> str | None:
        for event in self._log.all_events():
            if isinstance(event, TokenCreated) and event.token_id == token_id:
                return event.username
        return None


    async def deployments_running(self, version_id: str) -> list[str]:
        folded = (deployments.replay(self._log.events(s)) for s in self._log.streams if s.startswith("deployment-"))
        return sorted(d.full_name for d in folded if d is not None and d.current_release.version == version_id)


class FakeViews:
    """Answers queries by folding the in-memory log with the domain's own evolve functions."""

    def __init__(self, log: InMemoryEventLog) -> None:
        self._log = log

    def _accounts(self) -> list[Account]:
        folded = (accounts.replay(self._log.events(s)) for s in self._log.streams if s.startswith("account-"))
        return sorted((a for a in folded if a is not None), key=lambda a: a.username)

    async def account_for_token(self, token_hash: str) -> tuple[Account, str] | None:
        for account in self._accounts():
            for token in account.tokens:
                if token.token_hash == token_hash and token.status == "active":
                    return account.model_copy(update={"tokens": ()}), token.id
        return None

    async def get_account(self, username: str) -> Account | None:
        account = accounts.replay(self._log.events(f"account-{username}"))
        return account.model_copy(update={"tokens": ()}) if account else None

    async def list_accounts(self) -> list[Account]:
        return [a.model_copy(update={"tokens": ()}) for a in self._accounts()]

    async def organizations_of(self, username: str) -> list[str]:
        return [a.username for a in self._accounts() if username in a.members]

    async def list_tokens(self, username: str) -> list[Token]:
        account = accounts.replay(self._log.events(f"account-{username}"))
        return [t.model_copy(update={"token_hash": ""}) for t in account.tokens] if account else []

    async def get_model(self, owner: str, name: str) -> Model | None:
        model = models.replay(self._log.events(f"model-{owner}/{name}"))
        return model.model_copy(update={"versions": {}}) if model else None

    async def get_version(self, version_id: str) -> Version | None:
        for event in self._log.all_events():
            if isinstance(event, VersionCreated) and event.id == version_id:
                return Version.model_validate(event.model_dump())
        return None

    async def list_versions(self, owner: str, name: str) -> list[Version]:
        model = models.replay(self._log.events(f"model-{owner}/{name}"))
        return list(reversed(model.versions.values())) if model else []

    async def get_deployment(self, owner: str, name: str) -> Deployment | None:
        return deployments.replay(self._log.events(f"deployment-{owner}/{name}"))

    async def list_deployments(
        self, owners: list[str] | None, *, cursor: str, limit: int
    ) -> tuple[list[Deployment], str]:
        folded = (deployments.replay(self._log.events(s)) for s in self._log.streams if s.startswith("deployment-"))
        found = sorted(
            (d for d in folded if d is not None and (owners is None or d.owner in owners)),
            key=lambda d: d.created_at,
            reverse=True,
        )
        start = int(cursor or 0)
        page = found[start:start + limit]
        return page, str(start + limit) if start + limit < len(found) else ""
