"""Which addresses a webhook may be sent to: the shared address guard (`libs.netguard`), re-exported here.

Private, loopback, link-local, multicast, reserved and unspecified addresses (and IPv6 forms embedding them)
are refused unless the operator allows their networks, so a prediction's webhook cannot reach the platform's
own network (SSRF).
"""

from libs.netguard.addresses import (
    Address,
    DestinationRefused,
    Network,
    check_addresses,
    is_allowed,
    is_public,
    parse_networks,
)

__all__ = ["Address", "DestinationRefused", "Network", "check_addresses", "is_allowed", "is_public", "parse_networks"]
