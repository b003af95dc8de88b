"""A small bounded pool for argon2 work (password and secret verification), apart from the thread pool that every
database call uses, so that a flood of hashing can neither take the memory of dozens of parallel argon2 runs (64 MiB
each) nor stall other requests.

A few dedicated threads take jobs from a bounded queue, one source (client address or IPv6 /64, see `sources`) at a
time in turn, so a source with many jobs waiting does not delay a source with one. Beyond the bounds, work is shed
with `HashingBusy` (the HTTP layers answer 503 with Retry-After): a source may have `max_per_source` jobs waiting;
when the whole queue is full, a newcomer takes the place of the newest job of the source with the most waiting, and
is shed only when no source has more waiting than it would.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
CLEAN, SUSPECT = 0, 1
CLEAN_PER_SUSPECT = 3
# Suspects together get one thread at a time, and that thread rests this many times a job's length after each of
# their jobs: however many sources an attacker has, wrong secrets cost at most a quarter of one core, so requests
# that need no hashing (cached keys) keep their share of the machine.
SUSPECT_REST_FACTOR = 3.0


class HashingBusy(Exception):
    """Too much hashing is waiting: retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"hashing is busy; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class _Job(Generic[T]):
    call: Callable[[], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop
    source: str
    abandoned: bool = field(default=False)
    queued_at: float = field(default_factory=time.monotonic)


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class HashingPool:
    def __init__(
        self, name: str, threads: int = 2, max_queued: int = 32, max_per_source: int = 4, max_wait: float = 10.0
    ) -> None:
        self.name = name
        self._max_wait = max_wait
        self._threads = threads
        self._max_queued = max_queued
        self._max_per_source = max_per_source
        # Two rings of per-source queues: sources with no recent failure, then suspects (served one job in
        # CLEAN_PER_SUSPECT + 1 while clean ones wait, so that they are slowed, never starved).
        self._rings: tuple[OrderedDict[str, deque[_Job[Any]]], ...] = (OrderedDict(), OrderedDict())
        self._clean_in_a_row = 0
        self._suspect_ready_at = 0.0  # monotonic time from which a suspect's job may start (inf: one is running)
        self._queued = 0
        self._cond = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._closed = False
        self._seconds_per_job = 0.1  # moving average, for Retry-After
        self.ran = 0
        self.shed = 0

    @property
    def queued(self) -> int:
        return self._queued

    async def run(self, source: str, call: Callable[[], T], suspect: bool = False) -> T:
        """call() in one of the pool's threads, in `source`'s turn; HashingBusy when it cannot be queued. A `suspect`
        source (one whose recent verifications failed) waits behind sources that are not."""
        loop = asyncio.get_running_loop()
        job = _Job(call, loop.create_future(), loop, source)
        self._submit(job, suspect)
        try:
            result: T = await job.future
            return result
        except asyncio.CancelledError:
            job.abandoned = True  # a request that went away costs no hashing if its job has not started
            raise

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for ring in self._rings:
                for queue in ring.values():
                    for job in queue:
                        with contextlib.suppress(RuntimeError):  # its event loop may be gone
                            job.loop.call_soon_threadsafe(_settle, job.future, None, HashingBusy(1))
                ring.clear()
            self._queued = 0
            self._cond.notify_all()

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._queued * self._seconds_per_job / self._threads))

    def _waiting(self, source: str) -> int:
        return sum(len(ring[source]) for ring in self._rings if source in ring)

    def _submit(self, job: _Job[Any], suspect: bool) -> None:
        with self._cond:
            if self._closed:
                raise HashingBusy(1)
            self._start_workers()
            waiting = self._waiting(job.source)
            if waiting >= self._max_per_source:
                self.shed += 1
                raise HashingBusy(self._retry_after())
            if self._queued >= self._max_queued:
                self._make_room(waiting, suspect)
            ring = self._rings[SUSPECT if suspect else CLEAN]
            ring.setdefault(job.source, deque()).append(job)
            self._queued += 1
            self._cond.notify()

    def _make_room(self, waiting: int, suspect: bool) -> None:
        """Shed the newest job of the source with most waiting, suspects first; or the newcomer, if it has as many."""
        for index, ring in enumerate(self._rings[::-1]):
            if not ring or (suspect and index == 1):
                continue
            hog = max(ring, key=lambda source: len(ring[source]))
            if (index == 0 and not suspect) or len(ring[hog]) > waiting + 1:  # a clean newcomer displaces a suspect
                victim = ring[hog].pop()
                if not ring[hog]:
                    del ring[hog]
                self._queued -= 1
                self.shed += 1
                victim.loop.call_soon_threadsafe(_settle, victim.future, None, HashingBusy(self._retry_after()))
                return
        self.shed += 1
        raise HashingBusy(self._retry_after())

    def _start_workers(self) -> None:
        while len(self._workers) < self._threads:
            worker = threading.Thread(target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()

    def _next_job(self) -> tuple[_Job[Any], bool] | None:
        """The next job to run, and whether it is a suspect's."""
        with self._cond:
            while True:
                if self._closed:
                    return None
                clean, suspect = self._rings
                wait_for_suspects = time.monotonic() < self._suspect_ready_at
                if suspect and not wait_for_suspects and (not clean or self._clean_in_a_row >= CLEAN_PER_SUSPECT):
                    ring, self._clean_in_a_row, is_suspect = suspect, 0, True
                    self._suspect_ready_at = math.inf
                    break
                if clean:
                    ring, self._clean_in_a_row, is_suspect = clean, self._clean_in_a_row + 1, False
                    break
                rest = self._suspect_ready_at - time.monotonic() if suspect else None
                self._cond.wait(timeout=None if rest is None or math.isinf(rest) else max(rest, 0.001))
            source, queue = ring.popitem(last=False)
            job = queue.popleft()
            if queue:
                ring[source] = queue  # back of the line: each source in turn
            self._queued -= 1
            return job, is_suspect

    def _suspect_done(self, seconds: float) -> None:
        with self._cond:
            self._suspect_ready_at = time.monotonic() + SUSPECT_REST_FACTOR * seconds
            self._cond.notify_all()

    def _work(self) -> None:
        while (picked := self._next_job()) is not None:
            job, is_suspect = picked
            stale = time.monotonic() - job.queued_at > self._max_wait  # its caller has likely given up
            if job.abandoned or stale:  # spend nothing on it
                if is_suspect:
                    self._suspect_done(0.0)
                if stale and not job.abandoned:
                    self.shed += 1
                    with contextlib.suppress(RuntimeError):
                        job.loop.call_soon_threadsafe(_settle, job.future, None, HashingBusy(self._retry_after()))
                continue
            started = time.monotonic()
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.call()
            except BaseException as raised:  # handed to the awaiting request, which raises it
                error = raised
            self.ran += 1
            if is_suspect:
                self._suspect_done(time.monotonic() - started)
            self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * (time.monotonic() - started)
            with contextlib.suppress(RuntimeError):  # the event loop is gone (shutdown): nobody waits for the answer
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)
