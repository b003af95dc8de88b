"""Per-credential rate limits, as exact moving windows; one credential's limits never touch another's.

A limit "N/period" allows a request when fewer than N requests were accepted in the period before it. In process, each
(credential, limit) keeps the times of its last N accepted requests in a deque, so a check is O(1) whatever N is.
(The `limits` package's in-memory moving window inserts at the front of a list, O(N) per request, which cost more
than the rest of the guard together on a busy key.) The decision carries what the RateLimit-* headers report:
the limit closest to running out.

`guard.redis_windows` keeps the same windows in Redis, for limits shared by every instance; `guard.limiter` chooses.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from functools import lru_cache

from token_broker.policy import parse_rate_limit


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"ratelimit-limit", str(self.limit).encode()),
            (b"ratelimit-remaining", str(self.remaining).encode()),
            (b"ratelimit-reset", str(self.reset_seconds).encode()),
        ]
        if not self.allowed:
            headers.append((b"retry-after", str(max(1, self.reset_seconds)).encode()))
        return headers


@lru_cache(maxsize=256)
def parsed_limit(limit: str) -> tuple[int, int]:
    """(count, period in seconds) of a limit written N/period."""
    parsed = parse_rate_limit(limit)
    return parsed.count, parsed.period_seconds


class CredentialRateLimiter:
    """In-process moving windows, bounded to `max_windows` (the least recently used are dropped first)."""

    def __init__(self, max_windows: int = 200_000) -> None:
        self._windows: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()
        self._max = max_windows
        self._lock = threading.Lock()

    def hit(self, credential_id: str, limits: tuple[str, ...], now: float | None = None) -> Decision:
        """Count one request against every limit; refused when any is full, and then counted against none."""
        now = time.time() if now is None else now
        with self._lock:
            windows = []
            tightest: Decision | None = None
            for limit in limits:
                count, period = parsed_limit(limit)
                window = self._window(credential_id, limit)
                while window and window[0] <= now - period:
                    window.popleft()
                if len(window) >= count:
                    reset = math.ceil(window[0] + period - now)
                    return Decision(False, count, 0, max(1, reset))
                remaining = count - len(window) - 1
                reset = math.ceil(window[0] + period - now) if window else period
                windows.append(window)
                if tightest is None or remaining < tightest.remaining:
                    tightest = Decision(True, count, remaining, max(0, reset))
            for window in windows:
                window.append(now)
        return tightest or Decision(True, 0, 0, 0)

    def _window(self, credential_id: str, limit: str) -> deque[float]:
        key = (credential_id, limit)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = deque()
            if len(self._windows) > self._max:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
        return window
