"""Who may act for an owner (a user or an organization)."""

from __future__ import annotations

from services.gateway.adapters.registry_grpc import Account


def can_access(account: Account, owner: str) -> bool:
    """Whether `account` may see the owner's private models and files and change what the owner owns."""
    return account.username == owner
