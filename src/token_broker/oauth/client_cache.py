"""Recently verified client authentications, so that a grant does not verify its client twice.

The token endpoint authenticates the client before the grant runs, to charge the right client's budget (and to charge
the address, not the client, for a failure); the grant then authenticates the client again in its own write
transaction, which is the check that counts: a client revoked or rotated in between is refused there. When the same
client id, secret and method authenticated within TTL_SECONDS, the first check is answered from here instead of a
read transaction of its own.

Entries are keyed by an HMAC (a key of this process) of what was presented, so neither a secret nor its hash is
kept, and only a caller that presents the secret finds an entry: a caller that knows only the public client id cannot
charge the client's budget through this cache. An entry is dropped when the grant's own authentication fails, and
when the client changes anywhere (`forget_change`, fed by the change notes a rotation or revocation writes): the
introspection endpoint answers from an entry without authenticating again (oauth/fast_introspection.py), so an entry
is exact: it never outlives the grace of the secret it verified, a revoked client is not kept, and an authentication
that read the store before a client change was announced is not kept after it (`since`, as the guard's cache does).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from datetime import datetime

from token_broker.oauth.client_auth import PresentedClient
from token_broker.services.credential_changes import CLIENT_MARK, client_change_id

TTL_SECONDS = 30.0
MAX_ENTRIES = 10_000


class VerifiedClients:
    def __init__(self, ttl_seconds: float = TTL_SECONDS, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._key = secrets.token_bytes(32)
        self._entries: dict[bytes, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self.generation = 0  # one more at each client change heard

    def digest(self, presented: PresentedClient) -> bytes:
        material = "\0".join((presented.method, presented.client_id, presented.secret)).encode()
        return hmac.new(self._key, material, hashlib.sha256).digest()

    def get(self, digest: bytes) -> str | None:
        """The client id this presentation authenticated as within the TTL, or None."""
        found = self._entries.get(digest)
        if found is None:
            return None
        if found[1] <= time.monotonic():
            self.drop(digest)
            return None
        return found[0]

    def put(self, digest: bytes, client_id: str, since: int | None = None, grace_until: datetime | None = None) -> None:
        """Remember an authentication that began at generation `since` (kept only if no client changed meanwhile);
        while a rotated-out secret is in its grace (`grace_until`), for no longer than that grace."""
        lifetime = self.ttl_seconds
        if grace_until is not None and grace_until.timestamp() > time.time():
            lifetime = min(lifetime, grace_until.timestamp() - time.time())
        with self._lock:
            if since is not None and self.generation != since:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # bounded; a miss only costs the read transaction it saves
            self._entries[digest] = (client_id, time.monotonic() + lifetime)

    def drop(self, digest: bytes) -> None:
        with self._lock:
            self._entries.pop(digest, None)

    def forget(self, client_id: str) -> None:
        """The client changed (secret rotated, revoked): its presentations are verified afresh."""
        self.forget_change(client_change_id(client_id))

    def forget_change(self, note_id: str) -> None:
        """A change note was heard; a client's (services.credential_changes.client_change_id) forgets that client."""
        if not note_id.startswith(CLIENT_MARK):
            return
        with self._lock:
            self.generation += 1
            for digest in [
                digest for digest, (owner, _) in self._entries.items() if client_change_id(owner) == note_id
            ]:
                del self._entries[digest]

    def clear(self) -> None:
        """The change notes could not be read: nothing remembered can be trusted to be current."""
        with self._lock:
            self.generation += 1
            self._entries.clear()
