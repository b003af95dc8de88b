"""How many redirects one address may ask for: each visit may write a click, an outbox event and a webhook delivery
per subscribed hook, so one address must not be able to cause them without bound.

A token bucket per address block (an IPv4 address, an IPv6 /64: `sources`): BURST visits at once, then RATE a
second. Beyond, `429` with `Retry-After`. A shared address (an office, a carrier's NAT) shares the budget, which is
sized well above what people clicking links produce. At most MAX_BLOCKS buckets, least recently used dropped first.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from token_broker.sources import source_of

BURST = 60
RATE = 1.0  # visits a second, sustained: 3,600 an hour from one address block
MAX_BLOCKS = 100_000


class RedirectLimit:
    def __init__(self, burst: float = BURST, rate: float = RATE, max_blocks: int = MAX_BLOCKS) -> None:
        self._burst, self._rate, self._max = burst, rate, max_blocks
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # block -> (tokens, updated)
        self._lock = threading.Lock()
        self.refused = 0

    def take(self, address: str | None) -> int:
        """0 when the visit may go on (and is counted); otherwise the whole seconds until it may."""
        block = source_of(address)
        now = time.monotonic()
        with self._lock:
            tokens, updated = self._buckets.pop(block, (self._burst, now))
            tokens = min(self._burst, tokens + (now - updated) * self._rate)
            allowed = tokens >= 1
            self._buckets[block] = (tokens - 1 if allowed else tokens, now)
            if len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        if allowed:
            return 0
        self.refused += 1
        return max(1, math.ceil((1 - tokens) / self._rate))
