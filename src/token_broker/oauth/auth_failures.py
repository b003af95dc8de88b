"""Failed client authentications, counted per address, so that junk naming a client's public id never costs the
client anything: an address (an IPv6 /64, where one host is given 2^64 addresses) that fails too often is refused
429 for a while, whoever it names, and the real client, authenticating from elsewhere, is not touched.

A token bucket per address: `count` failures, refilled evenly over `period`. In process (each instance counts its
own), bounded to MAX_BUCKETS: when full, the longest-untouched bucket is forgotten, which can only give an address
its budget back early, never take another's away.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from token_broker.policy import parse_rate_limit

MAX_BUCKETS = 100_000


class AuthFailures:
    def __init__(self, limit: str, max_buckets: int = MAX_BUCKETS) -> None:
        parsed = parse_rate_limit(limit)
        self.count, self.period = parsed.count, parsed.period_seconds
        self._rate = self.count / self.period
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._max = max_buckets
        self._lock = threading.Lock()

    def _left(self, bucket: str, now: float) -> float:
        tokens, since = self._buckets.get(bucket, (float(self.count), now))
        return min(float(self.count), tokens + (now - since) * self._rate)

    def retry_after(self, bucket: str, now: float | None = None) -> int | None:
        """Seconds until this address may try again, or None when it has failures left."""
        now = time.monotonic() if now is None else now
        with self._lock:
            left = self._left(bucket, now)
        if left >= 1:
            return None
        return max(1, math.ceil((1 - left) / self._rate))

    def charge(self, bucket: str, now: float | None = None) -> None:
        """Count one failed authentication against the address."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._buckets[bucket] = (max(0.0, self._left(bucket, now) - 1), now)
            self._buckets.move_to_end(bucket)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
