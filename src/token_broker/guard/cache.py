"""The verification cache: argon2 runs once per credential per cache lifetime, not once per request.

Entries are keyed by an HMAC-SHA256 of the presented secret under a key made at start and never stored, so the cache
holds no secret and no unkeyed hash of one. Each entry is a snapshot of what the credential may do; it ends at the
snapshot's own deadline (expiry, or the end of a rotation's grace), after `ttl` seconds, or when invalidated by id.
Refusals of a well-formed credential are kept too (a wrong, revoked or expired secret never becomes right again), so
a client that keeps presenting a dead key costs no argon2 and spends none of its id's failure budget.

A verification that read the store before a change committed may finish after the change was announced: `put` is
given the generation read when the verification started and does not keep a success for a credential invalidated
since (nor any success after a `clear`), so a stale snapshot is never cached past its change.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from token_broker.errors import CredentialRefused
from token_broker.services.verification import VerifiedCredential

Outcome = VerifiedCredential | CredentialRefused


@dataclass(frozen=True)
class Entry:
    outcome: Outcome
    credential_id: str | None
    deadline: float  # time.time() after which the entry is stale


FORGET_RECORDS = 10_000


class VerificationCache:
    def __init__(self, max_entries: int = 50_000, ttl_seconds: float = 300.0) -> None:
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
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

    def get(self, digest: bytes) -> Outcome | None:
        entry = self._entries.get(digest)
        if entry is None or entry.deadline <= time.time():
            if entry is not None:
                self._drop(digest)
            self.misses += 1
            return None
        self.hits += 1
        return entry.outcome

    def put(self, digest: bytes, outcome: Outcome, since: int | None = None) -> None:
        """Keep an outcome; a success whose verification began at generation `since` only if its credential was not
        invalidated meanwhile."""
        deadline = time.time() + self._ttl
        credential_id = None
        if isinstance(outcome, VerifiedCredential):
            credential_id = outcome.id
            if outcome.valid_until is not None:
                deadline = min(deadline, outcome.valid_until.timestamp())
        with self._lock:
            if credential_id is not None and since is not None and self._changed_since(credential_id, since):
                return
            self._entries[digest] = Entry(outcome, credential_id, deadline)
            self._entries.move_to_end(digest)
            if credential_id is not None:
                self._by_id.setdefault(credential_id, set()).add(digest)
            while len(self._entries) > self._max_entries:
                oldest, entry = self._entries.popitem(last=False)
                self._forget_digest(entry.credential_id, oldest)

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
            entry = self._entries.pop(digest, None)
            if entry is not None:
                self._forget_digest(entry.credential_id, digest)

    def _forget_digest(self, credential_id: str | None, digest: bytes) -> None:
        if credential_id is None:
            return
        digests = self._by_id.get(credential_id)
        if digests is not None:
            digests.discard(digest)
            if not digests:
                del self._by_id[credential_id]
