"""Validation of a credential's settings (name, expiry, grace, allow-list, rate limits). Pure.

Each function takes what a person typed and returns the canonical value, or raises InvalidInput naming the field.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from token_broker.errors import InvalidInput

DEFAULT_GRACE_SECONDS = 24 * 3600
MAX_GRACE_SECONDS = 7 * 24 * 3600
MAX_EXPIRES_IN_SECONDS = 5 * 366 * 24 * 3600
MAX_NAME_LENGTH = 100
MAX_ALLOWED_IPS = 100
MAX_RATE_LIMITS = 8
PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE_LIMIT = re.compile(r"\s*([0-9]{1,9})\s*/\s*(second|minute|hour|day)\s*")


@dataclass(frozen=True, order=True)
class RateLimit:
    period_seconds: int
    count: int

    def __str__(self) -> str:
        period = next(name for name, seconds in PERIOD_SECONDS.items() if seconds == self.period_seconds)
        return f"{self.count}/{period}"


DEFAULT_RATE_LIMITS = (RateLimit(60, 60), RateLimit(3600, 5000))


def validate_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(field, f"{field} is required: give the key a name people will recognise")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(field, f"{field} must be at most {MAX_NAME_LENGTH} characters")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidInput(field, f"{field} must not contain control characters")
    return name


def validate_expires_in(seconds: object, field: str = "expires_in") -> int | None:
    if seconds is None:
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise InvalidInput(field, f"{field} must be a whole number of seconds")
    if not 1 <= seconds <= MAX_EXPIRES_IN_SECONDS:
        raise InvalidInput(field, f"{field} must be between 1 and {MAX_EXPIRES_IN_SECONDS} seconds (5 years)")
    return seconds


def validate_grace(seconds: object, field: str = "grace_seconds") -> int:
    if seconds is None:
        return DEFAULT_GRACE_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise InvalidInput(field, f"{field} must be a whole number of seconds")
    if not 0 <= seconds <= MAX_GRACE_SECONDS:
        raise InvalidInput(field, f"{field} must be between 0 and {MAX_GRACE_SECONDS} seconds (7 days)")
    return seconds


def validate_allowed_ips(values: Iterable[object], field: str = "allowed_ips") -> tuple[str, ...]:
    """IPv4 and IPv6 networks in CIDR form (a bare address means that one address), canonical and deduplicated."""
    networks: list[str] = []
    for value in values:
        if not isinstance(value, str):
            raise InvalidInput(field, f"{field} must be a list of CIDR strings such as 203.0.113.0/24")
        try:
            network = ipaddress.ip_network(value.strip(), strict=True)
        except ValueError:
            hint = ""
            with contextlib.suppress(ValueError):
                hint = f"; did you mean {ipaddress.ip_network(value.strip(), strict=False)}?"
            raise InvalidInput(field, f"{field}: {value!r} is not an IPv4 or IPv6 CIDR{hint}") from None
        if str(network) not in networks:
            networks.append(str(network))
    if len(networks) > MAX_ALLOWED_IPS:
        raise InvalidInput(field, f"{field} may hold at most {MAX_ALLOWED_IPS} networks")
    return tuple(networks)


def parse_rate_limit(value: object, field: str = "rate_limits") -> RateLimit:
    match = _RATE_LIMIT.fullmatch(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) < 1:
        raise InvalidInput(
            field,
            f"{field}: {value!r} is not a rate limit; write N/second, N/minute, N/hour or N/day with N at least 1",
        )
    return RateLimit(period_seconds=PERIOD_SECONDS[match.group(2)], count=int(match.group(1)))


def validate_rate_limits(values: Iterable[object] | None, field: str = "rate_limits") -> tuple[RateLimit, ...]:
    """A key's own limits replace the defaults; one limit per period (the strictest given wins)."""
    if values is None:
        return DEFAULT_RATE_LIMITS
    by_period: dict[int, RateLimit] = {}
    for value in values:
        limit = parse_rate_limit(value, field)
        current = by_period.get(limit.period_seconds)
        if current is None or limit.count < current.count:
            by_period[limit.period_seconds] = limit
    if not by_period:
        return DEFAULT_RATE_LIMITS
    if len(by_period) > MAX_RATE_LIMITS:
        raise InvalidInput(field, f"{field} may hold at most {MAX_RATE_LIMITS} limits")
    return tuple(sorted(by_period.values()))
