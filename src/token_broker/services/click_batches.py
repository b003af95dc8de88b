"""Clicks of the public redirect, written in batches: a visit notes its click in memory, and a background task (and
the lifespan's shutdown) writes what was noted in one transaction, like `last_used_at`.

So a visit costs a read, never a write transaction, and a flood of visits costs one transaction a second. A graceful
stop loses nothing: uvicorn finishes the requests in flight, then the lifespan writes the last batch. A process killed
outright (kill -9, a crash, the machine losing power) loses the clicks noted since the last write: at most about one
flush interval's worth. At most MAX_PENDING clicks wait in memory; beyond that, further clicks still redirect but are
not counted (and are counted in `dropped`), so memory stays bounded whatever arrives.
"""

from __future__ import annotations

import threading

from token_broker.services import link_clicks
from token_broker.services.link_clicks import Click
from token_broker.store.database import Database

FLUSH_SECONDS = 1.0
MAX_PENDING = 50_000
MAX_BATCH = 2_000  # clicks per transaction, so that one write never holds the lock for long


class ClickRecorder:
    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self._pending: list[Click] = []
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._max = max_pending
        self.dropped = 0
        self.written = 0

    def note(self, click: Click) -> bool:
        """Keep the click for the next write; False (and not kept) when MAX_PENDING are already waiting."""
        with self._lock:
            if len(self._pending) >= self._max:
                self.dropped += 1
                return False
            self._pending.append(click)
            return True

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self, database: Database) -> int:
        """Write every click noted so far, in batches of MAX_BATCH; returns how many were written. A batch that fails
        to write is put back in front of the queue to be tried again, and the error raised."""
        written = 0
        with self._flushing:
            while True:
                with self._lock:
                    batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                if not batch:
                    return written
                try:
                    count = link_clicks.record_clicks(database, batch)
                except Exception:
                    with self._lock:
                        self._pending[:0] = batch
                    raise
                written += count
                self.written += count
