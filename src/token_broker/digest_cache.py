"""What the guard's verification cache and introspection's description cache share: values keyed by an HMAC of what a
caller presented, each tied to the credential it describes and forgotten the moment that credential's change is
heard, with generations so that a value read before a change is never kept after it.

Keys are HMAC-SHA256 under a key made at start and never stored, so a cache holds no secret and no unkeyed hash of
one: only a caller presenting the secret finds its entry. `put` is given the generation read before the value was
read from the store and refuses the value if its credential was invalidated since (or the cache cleared).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")
FORGET_RECORDS = 10_000  # invalidations remembered by id; older ones are folded into one generation floor


class DigestCache(Generic[V]):
    def __init__(self, max_entries: int, ttl_seconds: float) -> None:
        self._keyed = hmac.new(secrets.token_bytes(32), digestmod="sha256")  # copied per digest: no key set-up
        self._entries: OrderedDict[bytes, tuple[V, str | None, float]] = OrderedDict()  # value, credential, deadline
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
        keyed = self._keyed.copy()
        keyed.update(presented.encode())
        return keyed.digest()

    def get(self, digest: bytes) -> V | None:
        found = self._entries.get(digest)
        if found is None or found[2] <= time.time():
            if found is not None:
                self._drop(digest)
            self.misses += 1
            return None
        self.hits += 1
        return found[0]

    def keep(
        self, digest: bytes, value: V, credential_id: str | None, valid_until: float | None, since: int | None
    ) -> None:
        """Keep `value` until `valid_until` (time.time()) or the cache's lifetime, whichever comes first; a value about
        a credential read at generation `since` only if that credential was not invalidated meanwhile."""
        deadline = time.time() + self._ttl
        if valid_until is not None:
            deadline = min(deadline, valid_until)
        if deadline <= time.time():
            return
        with self._lock:
            if credential_id is not None and since is not None and self._changed_since(credential_id, since):
                return
            self._entries[digest] = (value, credential_id, deadline)
            self._entries.move_to_end(digest)
            if credential_id is not None:
                self._by_id.setdefault(credential_id, set()).add(digest)
            while len(self._entries) > self._max_entries:
                oldest, (_, dropped_id, _) = self._entries.popitem(last=False)
                self._forget_digest(dropped_id, oldest)

    def changed_since(self, credential_id: str, since: int) -> bool:
        """Whether the credential was invalidated (or the cache cleared) after generation `since`."""
        with self._lock:
            return self._changed_since(credential_id, since)

    def _changed_since(self, credential_id: str, since: int) -> bool:
        return self._forgotten.get(credential_id, self._floor) > since

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
                self._forget_digest(found[1], digest)

    def _forget_digest(self, credential_id: str | None, digest: bytes) -> None:
        if credential_id is None:
            return
        digests = self._by_id.get(credential_id)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._by_id[credential_id]
