"""Who may see what: an account reaches its own resources and those of the organizations it belongs to."""

from __future__ import annotations

from services.gateway.adapters.registry_grpc import Account


def can_access(account: Account, owner: str | None) -> bool:
    """Whether `account` may use a private resource (prediction, file, private model) owned by `owner`.

    Members of an organization share its models, predictions and files; organizations have no members
    of their own kind, so one level is all there is.
    """
    if not owner:
        return False
    return owner == account.username or owner in account.organizations
