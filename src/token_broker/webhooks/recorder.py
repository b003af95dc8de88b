"""Recording attempts in batches: every attempt that finished while the previous batch was being written goes into the
next one, one write transaction for all (`deliveries.record_many`).

An attempt's delivery stays claimed (`delivering`, under its lease) until its batch commits, so a worker killed
between sending and recording leaves it to be taken over when the lease ends and sent again: at least once, never
lost. A batch that fails to commit is tried once more, then left to the leases the same way.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field

import anyio
from anyio import to_thread
from sqlalchemy.exc import SQLAlchemyError

from token_broker.services import deliveries
from token_broker.services.deliveries import AttemptResult, Job, RetryPolicy
from token_broker.store.database import Database
from token_broker.store.models import utcnow

log = logging.getLogger("token_broker.webhooks")
RETRY_PAUSE_SECONDS = 0.05


@dataclass
class _Entry:
    job: Job
    result: AttemptResult
    done: asyncio.Event = field(default_factory=asyncio.Event)  # asyncio's: an anyio.Event costs 7 µs to make, this 1
    status: str | None = None  # the delivery's new status; None when the batch could not be recorded


class Recorder:
    def __init__(self, database: Database, policy: RetryPolicy, rng: random.Random) -> None:
        self.database, self.policy, self.rng = database, policy, rng
        self.batches = 0  # how many write transactions recording took, for tests and benchmarks
        self._pending: list[_Entry] = []
        self._wake = anyio.Event()

    async def record(self, job: Job, result: AttemptResult) -> str | None:
        """Record one attempt with the next batch; returns its delivery's new status, None when not recorded."""
        entry = _Entry(job, result)
        self._pending.append(entry)
        self._wake.set()
        await entry.done.wait()
        return entry.status

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            batch, self._pending = self._pending, []
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[_Entry]) -> None:
        attempts = [(entry.job, entry.result) for entry in batch]
        try:
            for tries_left in (1, 0):
                try:
                    statuses = await to_thread.run_sync(
                        deliveries.record_many, self.database, attempts, self.policy, utcnow(), self.rng
                    )
                except Exception as error:  # e.g. a deadlock with another worker's batch, detected and rolled back
                    if not tries_left or not isinstance(error, SQLAlchemyError):  # a bug must not stop the worker
                        log.warning("webhook worker: could not record %d attempts; their leases will run out",
                                    len(batch), exc_info=True)  # fmt: skip
                        return
                    await anyio.sleep(RETRY_PAUSE_SECONDS)
                else:
                    self.batches += 1
                    for entry, status in zip(batch, statuses, strict=True):
                        entry.status = status
                    return
        finally:
            for entry in batch:
                entry.done.set()
