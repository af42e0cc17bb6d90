"""What the registry's handlers may touch: a unit of work over the event log, read views and a clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from libs.events import EventMetadata
from services.registry.domain.accounts import Account, Token
from services.registry.domain.collections import Collection
from services.registry.domain.deployments import Deployment
from services.registry.domain.events import RegistryEvent
from services.registry.domain.files import File
from services.registry.domain.models import Model, Version


class Clock(Protocol):
    def now(self) -> datetime: ...


class UnitOfWork(Protocol):
    """One transaction: reads see its own writes, and everything commits (or not) together on exit."""

    async def load(self, stream_id: str) -> tuple[list[RegistryEvent], int]:
        """The stream's events and its version (0 when it does not exist yet)."""
        ...

    async def append(self, stream_id: str, events: Sequence[RegistryEvent], expected_version: int) -> None:
        """Record events after `expected_version`; raises ConcurrencyError when someone else wrote first."""
        ...

    async def version_owner(self, version_id: str) -> str | None:
        """`owner/name` of the model that holds `version_id`, if any."""
        ...

    async def token_owner(self, token_id: str) -> str | None:
        """Username of the account that issued `token_id`, if any."""
        ...

    async def deployments_running(self, version_id: str) -> list[str]:
        """`owner/name` of the deployments whose current release runs `version_id`."""
        ...


UnitOfWorkFactory = Callable[[EventMetadata], AbstractAsyncContextManager[UnitOfWork]]


class RegistryViews(Protocol):
    """Read models; they are updated in the transaction of the events they derive from."""

    async def expired_file_ids(self, *, limit: int) -> list[str]:
        """Files past their expiry that are still recorded, oldest first."""
        ...

    async def account_for_token(self, token_hash: str) -> tuple[Account, str] | None:
        """The account and token id of an enabled token with this hash."""
        ...

    async def get_account(self, username: str) -> Account | None:
        """The account with its members (organizations); tokens are not included."""
        ...

    async def list_accounts(self) -> list[Account]:
        """Every account, ordered by username, with members; no tokens."""
        ...

    async def organizations_of(self, username: str) -> list[str]:
        """The organizations `username` is a member of, ordered by name."""
        ...

    async def list_tokens(self, username: str) -> list[Token]:
        """The account's tokens, oldest first, revoked ones included; hashes are not returned."""
        ...

    async def get_model(self, owner: str, name: str) -> Model | None: ...

    async def get_version(self, version_id: str) -> Version | None: ...

    async def list_versions(self, owner: str, name: str) -> list[Version]:
        """Newest first."""
        ...

    async def list_models(
        self, *, cursor: str, limit: int, sort_by: str, sort_direction: str, query: str,
        owners: list[str] | None = None,
    ) -> tuple[list[Model], str]:
        """One page of public models (with `owners`: every model of those owners) and the next page's cursor
        ("" on the last page)."""
        ...

    async def get_file(self, file_id: str) -> File | None:
        """None once the file is deleted or expired."""
        ...

    async def list_files(self, owner: str, *, cursor: str, limit: int) -> tuple[list[File], str]: ...

    async def get_collection(self, slug: str) -> Collection | None: ...

    async def list_collections(self, *, cursor: str, limit: int, query: str) -> tuple[list[Collection], str]: ...

    async def get_deployment(self, owner: str, name: str) -> Deployment | None: ...

    async def list_deployments(
        self, owners: list[str] | None, *, cursor: str, limit: int
    ) -> tuple[list[Deployment], str]:
        """Deployments of any of `owners`, newest first, and the next page's cursor ("" on the last page)."""
        ...
