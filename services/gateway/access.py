"""Who may act on an owner's models."""

from __future__ import annotations

from services.gateway.adapters.registry_grpc import Account


def can_access(account: Account, owner: str) -> bool:
    """Whether ``account`` may act as ``owner`` (push versions, see private models)."""
    return account.username == owner
