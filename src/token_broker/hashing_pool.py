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


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class HashingPool:
    def __init__(self, name: str, threads: int = 2, max_queued: int = 32, max_per_source: int = 4) -> None:
        self.name = name
        self._threads = threads
        self._max_queued = max_queued
        self._max_per_source = max_per_source
        self._queues: OrderedDict[str, deque[_Job[Any]]] = OrderedDict()
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

    async def run(self, source: str, call: Callable[[], T]) -> T:
        """call() in one of the pool's threads, in `source`'s turn; HashingBusy when it cannot be queued."""
        loop = asyncio.get_running_loop()
        job = _Job(call, loop.create_future(), loop, source)
        self._submit(job)
        try:
            result: T = await job.future
            return result
        except asyncio.CancelledError:
            job.abandoned = True  # a request that went away costs no hashing if its job has not started
            raise

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for queue in self._queues.values():
                for job in queue:
                    with contextlib.suppress(RuntimeError):  # its event loop may be gone
                        job.loop.call_soon_threadsafe(_settle, job.future, None, HashingBusy(1))
            self._queues.clear()
            self._queued = 0
            self._cond.notify_all()

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._queued * self._seconds_per_job / self._threads))

    def _submit(self, job: _Job[Any]) -> None:
        with self._cond:
            if self._closed:
                raise HashingBusy(1)
            self._start_workers()
            queue = self._queues.get(job.source)
            waiting = len(queue) if queue is not None else 0
            if waiting >= self._max_per_source:
                self.shed += 1
                raise HashingBusy(self._retry_after())
            if self._queued >= self._max_queued:
                hog = max(self._queues, key=lambda source: len(self._queues[source]))
                if len(self._queues[hog]) <= waiting + 1:
                    self.shed += 1
                    raise HashingBusy(self._retry_after())
                victim = self._queues[hog].pop()
                if not self._queues[hog]:
                    del self._queues[hog]
                self._queued -= 1
                self.shed += 1
                victim.loop.call_soon_threadsafe(_settle, victim.future, None, HashingBusy(self._retry_after()))
            if queue is None:
                queue = self._queues[job.source] = deque()
            queue.append(job)
            self._queued += 1
            self._cond.notify()

    def _start_workers(self) -> None:
        while len(self._workers) < self._threads:
            worker = threading.Thread(target=self._work, name=f"{self.name}-{len(self._workers)}", daemon=True)
            self._workers.append(worker)
            worker.start()

    def _next_job(self) -> _Job[Any] | None:
        with self._cond:
            while not self._queues and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            source, queue = self._queues.popitem(last=False)
            job = queue.popleft()
            if queue:
                self._queues[source] = queue  # back of the line: each source in turn
            self._queued -= 1
            return job

    def _work(self) -> None:
        while (job := self._next_job()) is not None:
            if job.abandoned:
                continue
            started = time.monotonic()
            result: Any = None
            error: BaseException | None = None
            try:
                result = job.call()
            except BaseException as raised:  # handed to the awaiting request, which raises it
                error = raised
            self.ran += 1
            self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * (time.monotonic() - started)
            with contextlib.suppress(RuntimeError):  # the event loop is gone (shutdown): nobody waits for the answer
                job.loop.call_soon_threadsafe(_settle, job.future, result, error)
