"""Validation of what admins type for a key: names, expiry, grace windows, allow-lists and rate limits."""

from __future__ import annotations

import pytest

from token_broker import policy
from token_broker.errors import InvalidInput
from token_broker.policy import RateLimit


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (["10.0.0.0/8"], ("10.0.0.0/8",)),
        (["203.0.113.7"], ("203.0.113.7/32",)),
        (["2001:db8::/32", "2001:DB8::/32"], ("2001:db8::/32",)),
        (["::1"], ("::1/128",)),
        ([], ()),
    ],
)
def test_allowed_ips_are_canonical(given: list[object], expected: tuple[str, ...]) -> None:
    assert policy.validate_allowed_ips(given) == expected


@pytest.mark.parametrize("bad", ["10.0.0.1/8", "300.1.1.1", "10.0.0.0/33", "host.example", "", "1.2.3.4/-1", 7])
def test_bad_allowed_ips_name_the_field(bad: object) -> None:
    with pytest.raises(InvalidInput) as raised:
        policy.validate_allowed_ips([bad])
    assert raised.value.field == "allowed_ips"


def test_host_bits_get_a_suggestion() -> None:
    with pytest.raises(InvalidInput, match=r"did you mean 10\.0\.0\.0/8"):
        policy.validate_allowed_ips(["10.0.0.1/8"])


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (None, policy.DEFAULT_RATE_LIMITS),
        ([], policy.DEFAULT_RATE_LIMITS),
        (["100/minute"], (RateLimit(60, 100),)),
        (["5/second", "1000/day"], (RateLimit(1, 5), RateLimit(86400, 1000))),
        (["10/minute", "5/minute"], (RateLimit(60, 5),)),
        (["  3 / hour "], (RateLimit(3600, 3),)),
    ],
)
def test_rate_limits_replace_the_defaults(given: list[object] | None, expected: tuple[RateLimit, ...]) -> None:
    assert policy.validate_rate_limits(given) == expected


def test_default_rate_limits_are_the_contracts() -> None:
    assert [str(limit) for limit in policy.DEFAULT_RATE_LIMITS] == ["60/minute", "5000/hour"]


@pytest.mark.parametrize("bad", ["0/minute", "10/week", "ten/minute", "10", "-1/second", "1e3/hour", 5, None])
def test_bad_rate_limits(bad: object) -> None:
    with pytest.raises(InvalidInput):
        policy.validate_rate_limits([bad])


@pytest.mark.parametrize(("given", "expected"), [(None, 86400), (0, 0), (604800, 604800), (60, 60)])
def test_grace_window(given: object, expected: int) -> None:
    assert policy.validate_grace(given) == expected


@pytest.mark.parametrize("bad", [-1, 604801, 1.5, "60", True])
def test_bad_grace_window(bad: object) -> None:
    with pytest.raises(InvalidInput):
        policy.validate_grace(bad)


@pytest.mark.parametrize("bad", [0, -5, "3600", 10**12, 2.5, False])
def test_bad_expiry(bad: object) -> None:
    with pytest.raises(InvalidInput):
        policy.validate_expires_in(bad)


@pytest.mark.parametrize("bad", ["", "   ", None, "x" * 101, "tab\there", 42])
def test_bad_names(bad: object) -> None:
    with pytest.raises(InvalidInput):
        policy.validate_name(bad)


def test_names_are_trimmed() -> None:
    assert policy.validate_name("  Zapier prod  ") == "Zapier prod"
