"""The block an address is counted under by per-address limits: an IPv4 address alone, an IPv6 address by its /64.

One IPv6 subscriber usually holds a whole /64 (2^64 addresses), so a limit per exact IPv6 address limits nothing.
IPv4-mapped IPv6 addresses count as their IPv4 address. Anything unparsable is counted under its own text.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache


@lru_cache(maxsize=8192)
def address_block(address: str | None) -> str:
    if not address:
        return "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:64]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return str(parsed)
