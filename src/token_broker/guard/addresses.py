"""Allow-list checks of the caller's address against a credential's CIDRs."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=4096)
def _networks(allowed: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(network) for network in allowed)


def address_allowed(address: str | None, allowed: tuple[str, ...]) -> bool:
    """True when there is no allow-list, or the address is inside one of its networks (IPv4-mapped IPv6 as IPv4)."""
    if not allowed:
        return True
    if address is None:
        return False
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        parsed = parsed.ipv4_mapped
    return any(parsed.version == network.version and parsed in network for network in _networks(allowed))
