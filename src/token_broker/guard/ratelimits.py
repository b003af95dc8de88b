"""Per-credential rate limits, as moving windows; one credential's limits never touch another's.

A limit "N/period" allows a request when fewer than N requests were accepted in the period before it. In process, a
(credential, limit) with N up to EXACT_UP_TO keeps the times of its last N accepted requests in a deque, exact and
O(1) per check. (The `limits` package's in-memory moving window inserts at the front of a list, O(N) per request,
which cost more than the rest of the guard together on a busy key.) Above that, one time per admission would let a
key with a huge limit hold memory for a whole day, so the window counts admissions per 1/64 of its period instead:
never more than N in any period, a slot released at most period/64 late. The decision carries what the RateLimit-*
headers report: the limit closest to running out.

`guard.redis_windows` keeps the same windows in Redis, for limits shared by every instance; `guard.limiter` chooses.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from functools import lru_cache
from typing import NamedTuple

from token_broker.policy import parse_rate_limit


class Decision(NamedTuple):
    """A rate limit's verdict on one request (a named tuple: made on every request, and a frozen dataclass's
    constructor costs an object.__setattr__ per field)."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int

    def headers(self) -> list[tuple[bytes, bytes]]:
        headers = [
            (b"ratelimit-limit", b"%d" % self.limit),
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % self.reset_seconds),
        ]
        if not self.allowed:
            headers.append((b"retry-after", b"%d" % max(1, self.reset_seconds)))
        return headers


# Limits up to this count keep exact moving windows; larger ones count admissions per 1/SLICES of their period.
EXACT_UP_TO = 1000
SLICES = 64


@lru_cache(maxsize=256)
def parsed_limit(limit: str) -> tuple[int, int]:
    """(count, period in seconds) of a limit written N/period."""
    parsed = parse_rate_limit(limit)
    return parsed.count, parsed.period_seconds


class _ExactWindow:
    """The times of the admissions within the period, oldest first: at most `count` of them."""

    __slots__ = ("period", "times")

    def __init__(self, period: int) -> None:
        self.period = period
        self.times: deque[float] = deque()

    def expire(self, now: float) -> None:
        times = self.times
        while times and times[0] <= now - self.period:
            times.popleft()

    @property
    def used(self) -> int:
        return len(self.times)

    def frees_at(self) -> float:
        return self.times[0] + self.period

    def add(self, now: float) -> None:
        self.times.append(now)


class _SlicedWindow:
    """Admissions counted per slice of period/SLICES: at most SLICES + 1 (slice, count) pairs, whatever the count.

    An admission counts until its whole slice has left the period, so the window never admits more than `count` in
    any period; a slot is released at most one slice (period/64) later than an exact window would release it."""

    __slots__ = ("period", "slice", "slices", "used")

    def __init__(self, period: int) -> None:
        self.period = period
        self.slice = period / SLICES
        self.slices: deque[list[int]] = deque()
        self.used = 0

    def expire(self, now: float) -> None:
        oldest_counted = math.floor(now / self.slice) - SLICES
        slices = self.slices
        while slices and slices[0][0] < oldest_counted:
            self.used -= slices.popleft()[1]

    def frees_at(self) -> float:
        return (self.slices[0][0] + SLICES + 1) * self.slice

    def add(self, now: float) -> None:
        index = math.floor(now / self.slice)
        if self.slices and self.slices[-1][0] == index:
            self.slices[-1][1] += 1
        else:
            self.slices.append([index, 1])
        self.used += 1


_Window = _ExactWindow | _SlicedWindow


class CredentialRateLimiter:
    """In-process moving windows for one kind of name, bounded to `max_windows` (the least recently used are dropped
    first). A window holds at most EXACT_UP_TO times, or SLICES + 1 counters: its memory does not grow with its
    limit."""

    def __init__(self, max_windows: int = 200_000) -> None:
        self._windows: OrderedDict[tuple[str, str], _Window] = OrderedDict()
        self._max = max_windows
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._windows)

    def hit(self, credential_id: str, limits: tuple[str, ...], now: float | None = None) -> Decision:
        """Count one request against every limit; refused when any is full, and then counted against none."""
        now = time.time() if now is None else now
        with self._lock:
            windows = []
            tightest: Decision | None = None
            for limit in limits:
                count, period = parsed_limit(limit)
                window = self._window(credential_id, limit, count, period)
                window.expire(now)
                used = window.used
                if used >= count:
                    reset = math.ceil(window.frees_at() - now)
                    return Decision(False, count, 0, max(1, reset))
                remaining = count - used - 1
                reset = math.ceil(window.frees_at() - now) if used else period
                windows.append(window)
                if tightest is None or remaining < tightest.remaining:
                    tightest = Decision(True, count, remaining, max(0, reset))
            for window in windows:
                window.add(now)
        return tightest or Decision(True, 0, 0, 0)

    def _window(self, credential_id: str, limit: str, count: int, period: int) -> _Window:
        key = (credential_id, limit)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _ExactWindow(period) if count <= EXACT_UP_TO else _SlicedWindow(period)
            if len(self._windows) > self._max:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
        return window
