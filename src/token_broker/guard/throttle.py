"""Throttling of failed verifications, so that wrong secrets cannot turn argon2 into a CPU or memory attack.

Before an uncached credential is hashed, one token is taken from a bucket for the name it claims and one from a
bucket for the client's source (IPv4 address or IPv6 /64, `token_broker.sources`); a success gives them back. With a
bucket empty, the request is refused without hashing.

Names are public (a credential's id is in every hint, an email is guessable), so for credentials the name's bucket is
per (id, source): failures from one place never spend the budget of the same id presented from another, and a real
secret presented from elsewhere during an attack on its id is hashed at once. (What bounds the total, whatever the
number of sources, is the hashing pool's queue, shared fairly between sources: `token_broker.hashing_pool`.)
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from token_broker.sources import source_of


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Bounded set of token buckets (capacity tokens, refilled at `per_second`); the least recently used go first."""

    def __init__(self, capacity: float, per_second: float, max_buckets: int = 100_000) -> None:
        self._capacity = capacity
        self._rate = per_second
        self._max = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, name: str) -> bool:
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = _Bucket(self._capacity, now)
                if len(self._buckets) > self._max:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(name)
                bucket.tokens = min(self._capacity, bucket.tokens + (now - bucket.updated) * self._rate)
                bucket.updated = now
            if bucket.tokens < 1:
                return False
            bucket.tokens -= 1
            return True

    def give_back(self, name: str) -> None:
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is not None:
                bucket.tokens = min(self._capacity, bucket.tokens + 1)


SUSPECT_SECONDS = 60.0
MAX_SUSPECTS = 100_000


class RecentFailures:
    """Sources whose checks failed in the last SUSPECT_SECONDS (at most MAX_SUSPECTS, oldest dropped): the hashing
    pool serves them behind everyone else, on one resting thread."""

    def __init__(self) -> None:
        self._failures: OrderedDict[str, float] = OrderedDict()  # source -> time of its last failure
        self._lock = threading.Lock()

    def failed(self, address: str | None) -> None:
        source = source_of(address)
        with self._lock:
            self._failures[source] = time.monotonic()
            self._failures.move_to_end(source)
            while len(self._failures) > MAX_SUSPECTS:
                self._failures.popitem(last=False)

    def suspect(self, address: str | None) -> bool:
        failed_at = self._failures.get(source_of(address))
        return failed_at is not None and time.monotonic() - failed_at < SUSPECT_SECONDS


class FailureThrottle:
    """Failures per name (a credential id, or an email at sign-in) and per client source.

    For credentials, per (id, source): 3 failed verifications, then one per 10 s; per source: 20, then one per second.
    With `name_per_source` off (sign-in), the name's bucket is shared by every source.

    At argon2's default cost (about 0.1 to 0.25 s of CPU), one source spraying wrong secrets costs at most a quarter of
    a core; many sources together are bounded by the hashing pool, not here.
    """

    def __init__(
        self,
        per_credential: tuple[float, float] = (3, 0.1),
        per_address: tuple[float, float] = (20, 1),
        name_per_source: bool = False,
    ) -> None:
        self.by_credential = TokenBuckets(*per_credential)
        self.by_address = TokenBuckets(*per_address)
        self._name_per_source = name_per_source
        self._recent = RecentFailures()
        self.refused = 0

    def _name_key(self, name: str, source: str) -> str:
        return f"{name} {source}" if self._name_per_source else name

    def admit(self, credential_id: str, address: str) -> bool:
        source = source_of(address)
        name = self._name_key(credential_id, source)
        if not self.by_credential.take(name):
            self.refused += 1
            self.failed(address)
            return False
        if not self.by_address.take(source):
            self.by_credential.give_back(name)
            self.refused += 1
            self.failed(address)
            return False
        return True

    def failed(self, address: str) -> None:
        """A verification from this address failed (or was refused unhashed): it is suspect for a while."""
        self._recent.failed(address)

    def suspect(self, address: str) -> bool:
        """Whether a verification from this address failed in the last SUSPECT_SECONDS."""
        return self._recent.suspect(address)

    def succeeded(self, credential_id: str, address: str) -> None:
        """A verification succeeded, or never ran (shed): its tokens are given back."""
        source = source_of(address)
        self.by_credential.give_back(self._name_key(credential_id, source))
        self.by_address.give_back(source)
