"""Shared rate limits without a Redis round trip per request: admissions decided in process, reconciled in batches.

A credential's limits that are large enough (every one at least MIN_BATCH / SLACK a period) are decided here from
what Redis last said of them: while the window closest to running out has room left after this instance's own
admissions since, the request is admitted at once, and the admissions go to Redis in one command (added whatever the
windows hold, answering their new state) when half a BATCH of them wait or FLUSH_SECONDS after the first. When the view
says the limit is reached, or is older than VIEW_SECONDS, or BATCH admissions wait already, the request is checked in
Redis as before (`RedisWindows.hit`, atomic, refused when full), and the answer is the new view. After Redis refuses
one with none of this instance's admissions on their way, the credential's requests are refused here for
REFUSED_SECONDS (or until the reset Redis gave, if sooner): a flood past the limit does not cost a round trip per
request, and a slot that frees meanwhile waits at most that long.

The bound: an instance never holds more than BATCH = min(MAX_BATCH, SLACK x the smallest limit) admissions of a
credential that Redis has not counted, and after its next reconciliation it sees the shared total; N instances admit
at most N x (BATCH + 1) requests over a limit in any window (the one more: a request being checked in Redis while
the others' batches are on their way; a randomised simulation reordering every command never went past it).
Windows never free early: the admissions are stamped in Redis when they arrive there, a little after they were made.
Smaller limits (under MIN_BATCH / SLACK a period) are checked in Redis on every request, exactly, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from functools import lru_cache

from token_broker.guard.ratelimits import Decision, parsed_limit
from token_broker.guard.redis_windows import RedisWindows, SharedLimitsUnavailable, WindowsSeen

SLACK = 0.01  # of the smallest limit: what one instance may admit before Redis has counted it
MAX_BATCH = 400
MIN_BATCH = 2  # below this, every request is checked in Redis: limits under 200 a period stay exact
FLUSH_SECONDS = 0.05
VIEW_SECONDS = 1.0  # an older view is refreshed by checking the next request in Redis
REFUSED_SECONDS = 1.0  # after Redis refuses, the credential's requests are refused here for this long (or its reset)
MAX_BATCHES = 100_000  # credentials with a view in memory; the least recently used are reconciled and dropped


@lru_cache(maxsize=1024)
def batch_size(limits: tuple[str, ...]) -> int:
    """How many admissions of a credential with these limits may wait for Redis; 0 when every request goes to it."""
    if not limits:
        return 0
    size = min(min(MAX_BATCH, math.floor(parsed_limit(limit)[0] * SLACK)) for limit in limits)
    return size if size >= MIN_BATCH else 0


class _Batch:
    """One credential's limits: what Redis last said of them and the admissions made here since.

    Every answer from Redis (a check or a reconciliation) becomes the view when it is the newest sent that answered;
    the admissions made here that the answer may not count (all but those reconciled before it was sent) are taken
    from what it says is left: counted twice rather than missed."""

    __slots__ = ("confirmed", "flushing", "left", "limit", "limits", "made", "name", "pending", "refused_until",
                 "reset_at", "seen_at", "sent", "size", "timer", "view_from")  # fmt: skip

    def __init__(self, name: str, limits: tuple[str, ...], size: int) -> None:
        self.name, self.limits, self.size = name, limits, size
        self.made = 0  # admitted here, ever
        self.confirmed = 0  # of those, counted by reconciliations Redis answered
        self.pending = 0  # admitted here, not yet sent to Redis
        self.flushing = 0  # sent to Redis, not yet answered
        self.sent = 0  # commands sent to Redis for this batch
        self.view_from = 0  # the command whose answer is the view
        self.left = 0  # slots left in the tightest window, less the admissions here it may not count
        self.limit = 0
        self.reset_at = 0.0
        self.seen_at = -math.inf
        self.refused_until = -math.inf
        self.timer: asyncio.TimerHandle | None = None

    def see(self, command: int, seen: WindowsSeen, counted_before: int) -> None:
        if command > self.view_from:
            self.view_from, now = command, time.monotonic()
            self.limit, self.reset_at, self.seen_at = seen.limit, now + seen.reset_seconds, now
            self.left = seen.left - (self.made - counted_before)

    def admit(self, now: float) -> Decision | None:
        """The decision for one more request made here, or None when Redis must decide it."""
        if self.left < 1 or self.pending + self.flushing >= self.size or now - self.seen_at > VIEW_SECONDS:
            return None
        self.left -= 1
        self.made += 1
        self.pending += 1
        return Decision(True, self.limit, self.left, max(0, math.ceil(self.reset_at - now)))


class BatchedWindows:
    """The shared windows, with large limits decided in process and reconciled in batches. `on_failure` hears of a
    reconciliation Redis did not answer (the limiter then decides in process until Redis is back)."""

    def __init__(self, windows: RedisWindows, on_failure: Callable[[str], None]) -> None:
        self.windows = windows
        self.on_failure = on_failure
        self._batches: OrderedDict[tuple[str, tuple[str, ...]], _Batch] = OrderedDict()
        self._flushes: set[asyncio.Task[None]] = set()
        self.reconciliations = 0

    async def hit(self, name: str, limits: tuple[str, ...]) -> Decision:
        size = batch_size(limits)
        if not size:
            return await self.windows.hit(name, limits)
        key = (name, limits)
        batch = self._batches.get(key)
        if batch is None:
            batch = self._batches[key] = _Batch(name, limits, size)
            if len(self._batches) > MAX_BATCHES:
                self._flush(self._batches.popitem(last=False)[1])
        else:
            self._batches.move_to_end(key)
            now = time.monotonic()
            if now < batch.refused_until:  # a flood past the limit costs Redis one check a second, not one a request
                return Decision(False, batch.limit, 0, max(1, math.ceil(batch.reset_at - now)))
            decision = batch.admit(now)
            if decision is not None:
                self._flush_due(batch)
                return decision
        batch.sent += 1
        command, counted_before, made = batch.sent, batch.confirmed, batch.made
        # Redis counts this instance's admissions it has not been sent (or not yet answered for) as used: some may
        # be counted twice for a moment, none is missed.
        uncounted = batch.made - counted_before
        decision = await self.windows.hit(name, limits, uncounted=uncounted)  # SharedLimitsUnavailable: the caller's
        left = decision.remaining if decision.allowed else 0  # already less the uncounted admissions
        batch.see(command, WindowsSeen(decision.limit, left, decision.reset_seconds), made)
        if not decision.allowed and not uncounted:  # Redis alone found the limit reached: no admission of ours in it
            batch.refused_until = time.monotonic() + min(REFUSED_SECONDS, decision.reset_seconds)
        return decision

    def _flush_due(self, batch: _Batch) -> None:
        """Send at half a batch, so that admissions go on in process while it is on its way (a full batch out would
        send every request to Redis until its answer); else FLUSH_SECONDS after the first admission waiting."""
        if 2 * batch.pending >= batch.size:
            self._flush(batch)
        elif batch.pending and batch.timer is None:
            batch.timer = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush, batch)

    def _flush(self, batch: _Batch) -> None:
        """Send the batch's waiting admissions to Redis, unless some are out already (their answer sends the rest)."""
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if batch.flushing or not batch.pending:
            return
        count, batch.pending, batch.flushing = batch.pending, 0, batch.pending  # now: one reconciliation at a time
        batch.sent += 1
        task = asyncio.get_running_loop().create_task(self._reconcile(batch, count, batch.sent, batch.confirmed))
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _reconcile(self, batch: _Batch, count: int, command: int, counted_before: int) -> None:
        try:
            seen = await self.windows.add(batch.name, batch.limits, count)
        except SharedLimitsUnavailable as error:
            batch.flushing = 0
            self.forget_all()  # the limiter decides in process now; views are rebuilt from Redis when it is back
            self.on_failure(str(error))
            return
        self.reconciliations += 1
        batch.flushing = 0
        batch.confirmed += count
        batch.see(command, seen, counted_before + count)
        self._flush_due(batch)

    def forget_all(self) -> None:
        """Drop every view and the admissions not yet reconciled (Redis is away: they cannot reach it)."""
        for batch in self._batches.values():
            if batch.timer is not None:
                batch.timer.cancel()
        self._batches.clear()

    async def reconcile_all(self) -> None:
        """Send every waiting admission to Redis now (at shutdown, and for tests)."""
        for batch in list(self._batches.values()):
            self._flush(batch)
        while self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)

    async def close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.reconcile_all(), timeout=1.0)
        for task in list(self._flushes):
            task.cancel()
