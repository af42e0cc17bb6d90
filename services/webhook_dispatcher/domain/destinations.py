"""Which addresses a webhook may be sent to: public ones, plus the networks the operator allows.

Private, loopback, link-local, multicast, reserved and unspecified addresses are refused by default, so a
prediction's webhook cannot be used to reach the platform's own network (SSRF).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class DestinationRefused(Exception):
    """The webhook's host resolves to an address that webhooks may not reach."""


def parse_networks(spec: str | Sequence[str]) -> tuple[Network, ...]:
    """`"127.0.0.0/8, ::1/128"` (or a list of such) → networks; a bare address is a /32 or /128."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_public(address: Address) -> bool:
    """Globally routable unicast: not private, loopback, link-local, shared (CGNAT), reserved or multicast."""
    address = _unmapped(address)
    return address.is_global and not address.is_multicast


def is_allowed(address: str | Address, allowed: Iterable[Network] = ()) -> bool:
    parsed = _unmapped(ipaddress.ip_address(address) if isinstance(address, str) else address)
    if any(parsed in network for network in allowed if network.version == parsed.version):
        return True
    return is_public(parsed)


def check_addresses(host: str, addresses: Sequence[str], allowed: Iterable[Network] = ()) -> None:
    """Refuse unless every address `host` resolved to may be reached (one bad answer is enough to refuse)."""
    allowed = tuple(allowed)
    if not addresses:
        raise DestinationRefused(f"{host} did not resolve to any address")
    for address in addresses:
        if not is_allowed(address, allowed):
            raise DestinationRefused(f"{host} resolves to {address}, which webhooks may not reach")
