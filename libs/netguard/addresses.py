"""Which addresses outbound requests made on a user's behalf may reach: public ones, plus operator-allowed networks.

Webhooks and file-input downloads are URLs a user chooses; without this check they would reach the platform's
own network (SSRF). Refused by default: loopback, private, link-local, shared (CGNAT), unspecified, multicast,
reserved and documentation ranges, IPv6 site-local (`fec0::/10`) and unique-local (`fc00::/7`), and every IPv6
form that embeds an IPv4 address (IPv4-mapped and -compatible, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`,
Teredo) unless the embedded address is public itself. The local-use NAT64 prefix `64:ff9b:1::/48` is refused
outright: where it embeds the IPv4 address is a local choice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_SITE_LOCAL = ipaddress.IPv6Network("fec0::/10")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


class DestinationRefused(Exception):
    """The host resolves to an address that this kind of request may not reach."""


def parse_networks(spec: str | Sequence[str]) -> tuple[Network, ...]:
    """`"127.0.0.0/8, ::1/128"` (or a list of such) → networks; a bare address is a /32 or /128."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip())


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, compatible, NAT64, 6to4, Teredo client), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_public(address: str | Address) -> bool:
    """Globally routable unicast, also for the IPv4 address an IPv6 form embeds."""
    parsed = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed in _NAT64_LOCAL or parsed in _SITE_LOCAL or parsed in _UNIQUE_LOCAL:
            return False
        inner = embedded_ipv4(parsed)
        if inner is not None:
            return is_public(inner)
    return parsed.is_global and not parsed.is_multicast and not parsed.is_reserved


def is_allowed(address: str | Address, allowed: Iterable[Network] = ()) -> bool:
    parsed = ipaddress.ip_address(address) if isinstance(address, str) else address
    inner = parsed.ipv4_mapped if isinstance(parsed, ipaddress.IPv6Address) else None
    for candidate in (parsed, inner):
        if candidate is not None and any(
            candidate in network for network in allowed if network.version == candidate.version
        ):
            return True
    return is_public(parsed)


def check_addresses(
    host: str, addresses: Sequence[str], allowed: Iterable[Network] = (), *, purpose: str = "requests"
) -> None:
    """Refuse unless every address `host` resolved to may be reached (one bad answer is enough to refuse)."""
    allowed = tuple(allowed)
    if not addresses:
        raise DestinationRefused(f"{host} did not resolve to any address")
    for address in addresses:
        if not is_allowed(address, allowed):
            raise DestinationRefused(f"{host} resolves to {address}, which {purpose} may not reach")
