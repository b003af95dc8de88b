"""Throttling of failed verifications, so that wrong secrets cannot turn argon2 into a CPU or memory attack.

Before an uncached credential is hashed, one token is taken from a bucket for its public id and one from a bucket for
the client address; a success gives them back. With a bucket empty, the request is refused without hashing. A real
secret presented during an attack on its id still gets through within seconds, as the bucket refills.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


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


class FailureThrottle:
    """Failures per name (a credential id, or an email at sign-in) and per client address.

    For credentials, per id: 3 failed verifications, then one per 10 s; per client address: 20, then one per second.

    At argon2's default cost (about 0.1 to 0.25 s of CPU), a sustained spray at one id costs at most a few percent of a
    core, and one address spraying many ids at most a quarter of one.
    """

    def __init__(
        self,
        per_credential: tuple[float, float] = (3, 0.1),
        per_address: tuple[float, float] = (20, 1),
    ) -> None:
        self.by_credential = TokenBuckets(*per_credential)
        self.by_address = TokenBuckets(*per_address)
        self.refused = 0

    def admit(self, credential_id: str, address: str) -> bool:
        if not self.by_credential.take(credential_id):
            self.refused += 1
            return False
        if not self.by_address.take(address):
            self.by_credential.give_back(credential_id)
            self.refused += 1
            return False
        return True

    def succeeded(self, credential_id: str, address: str) -> None:
        self.by_credential.give_back(credential_id)
        self.by_address.give_back(address)
