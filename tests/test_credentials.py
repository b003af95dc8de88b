"""The credential format: generation, parsing before any lookup, checksums, the scanner pattern, hashing."""

from __future__ import annotations

import re

import pytest

from token_broker import credentials
from token_broker.credentials import CREDENTIAL_PATTERN, CredentialKind, SecretHasher
from token_broker.errors import MalformedCredential

GOOD = credentials.generate(CredentialKind.WORKSPACE_KEY).plaintext


@pytest.mark.parametrize("kind", list(CredentialKind))
def test_generated_credentials_parse_back(kind: CredentialKind) -> None:
    made = credentials.generate(kind)
    parsed = credentials.parse(made.plaintext)
    assert parsed == made
    assert made.plaintext.startswith(f"nim_{kind.value}_")
    assert re.fullmatch(CREDENTIAL_PATTERN, made.plaintext)


def test_secret_has_at_least_128_bits() -> None:
    import math

    assert credentials.SECRET_LENGTH * math.log2(62) >= 128


def test_rotation_keeps_the_public_id() -> None:
    first = credentials.generate(CredentialKind.WORKSPACE_KEY)
    second = credentials.generate(CredentialKind.WORKSPACE_KEY, public_id=first.public_id)
    assert second.public_id == first.public_id
    assert second.plaintext != first.plaintext


@pytest.mark.parametrize(
    "presented",
    [
        "",
        " ",
        GOOD[:-1],  # truncated
        GOOD + "x",  # too long
        GOOD[:-1] + ("A" if GOOD[-1] != "A" else "B"),  # checksum off by one character
        GOOD[:20] + ("A" if GOOD[20] != "A" else "B") + GOOD[21:],  # a typo in the body
        GOOD.replace("nim_", "sk_", 1),  # another product's prefix
        GOOD.replace("_key_", "_abc_", 1),  # unknown kind marker
        GOOD.upper(),
        " " + GOOD,
        GOOD + "\n",
        "Bearer " + GOOD,
        "nim_key_",
        "é" * 60,
        "\x00" * 60,
        "nim_key_" + "a" * 12 + "_" + "ä" * 38,
        "x" * 16384,
    ],
)
def test_malformed_credentials_are_refused_before_lookup(presented: str) -> None:
    with pytest.raises(MalformedCredential) as raised:
        credentials.parse(presented)
    assert "header name" in raised.value.message
    assert GOOD not in raised.value.message


def test_repr_and_hint_never_show_the_secret() -> None:
    made = credentials.generate(CredentialKind.PARTNER_ACCESS)
    secret = made.plaintext.split("_")[3][: credentials.SECRET_LENGTH]
    assert secret not in repr(made)
    hint = credentials.hint(made)
    assert secret[:8] not in hint and made.public_id in hint and hint.startswith("nim_pat_")


def test_scanner_pattern_finds_credentials_in_text() -> None:
    text = f"config: KEY={GOOD}\nother nim_key_short"
    assert re.findall(CREDENTIAL_PATTERN, text) == [GOOD]


def test_hasher_verifies_only_the_right_secret() -> None:
    hasher = SecretHasher(credentials.HashingCost(time_cost=1, memory_kib=1024, parallelism=1))
    stored = hasher.hash(GOOD)
    assert stored.startswith("$argon2id$")
    assert GOOD not in stored
    assert hasher.verify(stored, GOOD)
    assert not hasher.verify(stored, GOOD[:-1] + ("1" if GOOD.endswith("0") else "0"))  # one in 62 ends with 0
    assert not hasher.verify("not a hash", GOOD)
    hasher.verify_nothing()
