"""The credential format, and hashing of secrets at rest. Pure: no I/O.

A credential reads ``nim_<kind>_<public id>_<secret><checksum>``:

- ``nim_`` is the product prefix;
- the kind marker is ``key`` (workspace API key), ``pat`` (partner access token) or ``prt`` (partner refresh token);
- the public id is 12 base62 characters, the indexed lookup key;
- the secret is 32 base62 characters (about 190 bits);
- the checksum is the CRC-32 of everything before it, as 6 base62 characters, so that a truncated or mistyped
  credential is refused before any lookup.

One regular expression matches every credential (for secret scanners): ``CREDENTIAL_PATTERN``.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import zlib
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from token_broker.config import HashingCost
from token_broker.errors import MalformedCredential

PREFIX = "nim"
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PUBLIC_ID_LENGTH = 12
SECRET_LENGTH = 32
CHECKSUM_LENGTH = 6
CREDENTIAL_PATTERN = r"\bnim_(?:key|pat|prt)_[0-9A-Za-z]{12}_[0-9A-Za-z]{38}\b"
PUBLIC_ID_PATTERN = re.compile(rf"[0-9A-Za-z]{{{PUBLIC_ID_LENGTH}}}")
_SHAPE = re.compile(
    rf"{PREFIX}_(key|pat|prt)_([0-9A-Za-z]{{{PUBLIC_ID_LENGTH}}})_"
    rf"([0-9A-Za-z]{{{SECRET_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})"
)
MALFORMED_MESSAGE = (
    "The credential is not a token-broker API key: check the header name (Authorization: Bearer or X-Nim-Api-Key) "
    "and that the value starts with nim_ and was copied whole."
)


class CredentialKind(enum.StrEnum):
    WORKSPACE_KEY = "key"
    PARTNER_ACCESS = "pat"
    PARTNER_REFRESH = "prt"


@dataclass(frozen=True)
class ParsedCredential:
    kind: CredentialKind
    public_id: str
    plaintext: str

    def __repr__(self) -> str:
        return f"ParsedCredential(kind={self.kind.value!r}, public_id={self.public_id!r})"


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits))


# Random bytes below 248 (4 times 62) map uniformly onto the alphabet, the rest are dropped; bytes.translate in C:
# secrets.choice per character cost about a fiftieth of a refresh request.
_BASE62_OF_BYTE = bytes(ord(BASE62[byte % 62]) if byte < 248 else 0 for byte in range(256))
_BIASED_BYTES = bytes(range(248, 256))


def _random_base62(length: int) -> str:
    found = b""
    while len(found) < length:
        found += secrets.token_bytes(length + 8).translate(_BASE62_OF_BYTE, _BIASED_BYTES)
    return found[:length].decode("ascii")


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


def random_base62(length: int) -> str:
    return _random_base62(length)


def new_public_id() -> str:
    return _random_base62(PUBLIC_ID_LENGTH)


def is_public_id(value: str) -> bool:
    return PUBLIC_ID_PATTERN.fullmatch(value) is not None


def generate(kind: CredentialKind, public_id: str | None = None) -> ParsedCredential:
    """A new credential with a fresh secret; pass public_id to keep an id (rotation)."""
    return compose(kind, public_id or new_public_id(), _random_base62(SECRET_LENGTH))


def derive(kind: CredentialKind, public_id: str, key: bytes, material: str) -> ParsedCredential:
    """A credential whose secret is HMAC-SHA256(key, material): the same inputs give the same credential again, and
    nobody without both the key and the material can compute it."""
    digest = hmac.new(key, f"{kind.value}:{public_id}:{material}".encode(), hashlib.sha256).digest()
    return compose(kind, public_id, _base62(int.from_bytes(digest, "big"), SECRET_LENGTH))


def compose(kind: CredentialKind, public_id: str, secret: str) -> ParsedCredential:
    body = f"{PREFIX}_{kind.value}_{public_id}_{secret}"
    return ParsedCredential(kind=kind, public_id=public_id, plaintext=body + _checksum(body))


def parse(presented: str) -> ParsedCredential:
    """Parse a presented credential, refusing anything that is not well-formed before any lookup."""
    match = _SHAPE.fullmatch(presented)
    if match is None or _checksum(presented[:-CHECKSUM_LENGTH]) != match.group(4):
        raise MalformedCredential(MALFORMED_MESSAGE)
    return ParsedCredential(kind=CredentialKind(match.group(1)), public_id=match.group(2), plaintext=presented)


def hint(parsed: ParsedCredential) -> str:
    """What lists show of a credential: its kind, id and checksum tail, none of the secret."""
    return f"{PREFIX}_{parsed.kind.value}_{parsed.public_id}_...{parsed.plaintext[-4:]}"


FAST_HASH_PREFIX = "sha256$"


def fast_hash(secret: str) -> str:
    """SHA-256 for machine-issued secrets of about 190 random bits (partner tokens, refresh tokens, codes, client
    secrets), which OWASP ASVS 5.0 6.5.2 allows: guessing is hopeless at any speed, and the token endpoint must not
    spend argon2's 100 ms of CPU on every refresh."""
    return FAST_HASH_PREFIX + hashlib.sha256(secret.encode()).hexdigest()


class SecretHasher:
    """argon2id hashing for workspace keys and passwords; verifies fast hashes too. Never raises on a bad hash."""

    def __init__(self, cost: HashingCost) -> None:
        self._hasher = PasswordHasher(
            time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
        )
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def hash(self, secret: str) -> str:
        return self._hasher.hash(secret)

    def verify(self, stored_hash: str, secret: str) -> bool:
        if stored_hash.startswith(FAST_HASH_PREFIX):
            return hmac.compare_digest(stored_hash, fast_hash(secret))
        try:
            return self._hasher.verify(stored_hash, secret)
        except (VerificationError, InvalidHashError):
            return False

    def verify_nothing(self) -> None:
        """Spend what a real verification costs, so that an unknown id and a wrong secret take the same time."""
        self.verify(self._dummy_hash, "not-the-secret")
