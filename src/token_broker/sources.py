"""Where a request comes from, as throttles and the hashing pools count it: an IPv4 address, or an IPv6 /64.

One IPv6 subscriber usually holds a whole /64 (2^64 addresses), so counting IPv6 by exact address would give an
attacker a fresh budget per request. IPv4-mapped IPv6 addresses count as their IPv4 address.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

UNKNOWN = "unknown"


@lru_cache(maxsize=8192)
def source_of(address: str | None) -> str:
    """The bucket name of a client address: the IPv4 address itself, the IPv6 /64 network, or "unknown"."""
    if not address:
        return UNKNOWN
    if "/" in address:  # already a source: the same again
        try:
            return (
                str(ipaddress.ip_network(address, strict=False).supernet(new_prefix=64)) if ":" in address else UNKNOWN
            )
        except ValueError:
            return UNKNOWN
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return UNKNOWN
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)
