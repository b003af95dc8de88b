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

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

FORGET_RECORDS = 10_000


@dataclass(frozen=True)
class Description:
    owner: str  # the client_id of the client the token was issued to: only it is told the token is active
    body: bytes  # the introspection answer, encoded as the endpoint encodes it
    expires_at: float  # the token's exp (time.time()); at or after it the token is inactive, cached or not
    credential_id: str


def encode(fields: dict[str, Any]) -> bytes:
    """The answer's bytes exactly as starlette's JSONResponse renders them."""
    return json.dumps(fields, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")).encode()


class DescriptionCache:
    def __init__(self, max_entries: int = 50_000, ttl_seconds: float = 300.0) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, tuple[Description, float]] = OrderedDict()
        self._by_id: dict[str, set[bytes]] = {}
        self._max_entries = max_entries
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.generation = 0  # one more at each invalidation or clear
        self._forgotten: OrderedDict[str, int] = OrderedDict()  # credential id -> generation of its last invalidation
        self._floor = 0  # invalidations at or below this generation are no longer told apart by id

    def digest(self, presented: str) -> bytes:
        return hmac.new(self._key, presented.encode(), hashlib.sha256).digest()

    def get(self, digest: bytes) -> Description | None:
        """The cached description, which may name a token expired since (the caller checks expires_at)."""
        found = self._entries.get(digest)
        if found is None or found[1] <= time.monotonic():
            if found is not None:
                self._drop(digest)
            self.misses += 1
            return None
        self.hits += 1
        return found[0]

    def put(self, digest: bytes, description: Description, since: int) -> None:
        """Keep a description read in a transaction that began at generation `since`, unless its credential was
        invalidated meanwhile."""
        lifetime = min(self._ttl, description.expires_at - time.time())
        if lifetime <= 0:
            return
        credential_id = description.credential_id
        with self._lock:
            if self._forgotten.get(credential_id, self._floor) > since:
                return
            self._entries[digest] = (description, time.monotonic() + lifetime)
            self._entries.move_to_end(digest)
            self._by_id.setdefault(credential_id, set()).add(digest)
            while len(self._entries) > self._max_entries:
                oldest, (dropped, _) = self._entries.popitem(last=False)
                self._forget_digest(dropped.credential_id, oldest)

    def invalidate(self, credential_id: str) -> None:
        with self._lock:
            self.generation += 1
            self._forgotten[credential_id] = self.generation
            self._forgotten.move_to_end(credential_id)
            while len(self._forgotten) > FORGET_RECORDS:
                _, generation = self._forgotten.popitem(last=False)
                self._floor = max(self._floor, generation)
            for digest in self._by_id.pop(credential_id, set()):
                self._entries.pop(digest, None)

    def clear(self) -> None:
        with self._lock:
            self.generation += 1
            self._floor = self.generation
            self._forgotten.clear()
            self._entries.clear()
            self._by_id.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, digest: bytes) -> None:
        with self._lock:
            found = self._entries.pop(digest, None)
            if found is not None:
                self._forget_digest(found[0].credential_id, digest)

    def _forget_digest(self, credential_id: str, digest: bytes) -> None:
        digests = self._by_id.get(credential_id)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._by_id[credential_id]
