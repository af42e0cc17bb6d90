"""The address guard for outbound requests a user chooses the destination of (webhooks, file-input URLs)."""

from libs.netguard.addresses import (
    Address,
    DestinationRefused,
    Network,
    check_addresses,
    embedded_ipv4,
    is_allowed,
    is_public,
    parse_networks,
)
from libs.netguard.client import (
    MAX_REDIRECTS,
    GuardedNetworkBackend,
    GuardedTransport,
    check_url,
    guarded_client,
    guarded_get,
)

__all__ = [
    "MAX_REDIRECTS",
    "Address",
    "DestinationRefused",
    "GuardedNetworkBackend",
    "GuardedTransport",
    "Network",
    "check_addresses",
    "check_url",
    "embedded_ipv4",
    "guarded_client",
    "guarded_get",
    "is_allowed",
    "is_public",
    "parse_networks",
]
