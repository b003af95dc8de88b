"""Recently read descriptions of active access tokens, so that introspection answers without the store.

Entries are keyed by an HMAC-SHA256 of the presented token under a key made at start and never stored, so the cache
holds neither a token nor an unkeyed hash of one: only a caller presenting the token finds its entry. An entry holds
what introspection answers (RFC 7662 fields, already encoded) and the client the token belongs to; it ends at the
token's own expiry, after `ttl_seconds`, or when its credential's change is heard (`invalidate`, fed by the same change
notes as the guard's cache: the after-commit hook of this instance, LISTEN/NOTIFY and the polled notes of the others).

A description read before a change committed may be offered after the change was announced: `put` is given the
generation read before the description's transaction began and does not keep it for a credential invalidated since
(nor after a `clear`), as the guard's cache does, so a stale description is never cached past its change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from token_broker.digest_cache import DigestCache


@dataclass(frozen=True)
class Description:
    owner: str  # the client_id of the client the token was issued to: only it is told the token is active
    body: bytes  # the introspection answer, encoded as the endpoint encodes it
    expires_at: float  # the token's exp (time.time()); at or after it the token is inactive, cached or not
    credential_id: str


def encode(fields: dict[str, Any]) -> bytes:
    """The answer's bytes exactly as starlette's JSONResponse renders them."""
    return json.dumps(fields, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


class DescriptionCache(DigestCache[Description]):
    """`get` may return a description of a token expired since it was read: the caller checks expires_at."""

    def __init__(self, max_entries: int = 50_000, ttl_seconds: float = 300.0) -> None:
        super().__init__(max_entries, ttl_seconds)

    def put(self, digest: bytes, description: Description, since: int) -> None:
        """Keep a description read in a transaction that began at generation `since`, unless its credential was
        invalidated meanwhile."""
        self.keep(digest, description, description.credential_id, description.expires_at, since)
