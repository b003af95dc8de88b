"""last_used_at, written in batches: requests note the time in memory, a background task writes them together."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from token_broker.services.verification import record_last_used
from token_broker.store.database import Database


class UsageRecorder:
    def __init__(self) -> None:
        self._pending: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, credential_id: str, when: float) -> None:
        self._pending[credential_id] = when

    def flush(self, database: Database) -> int:
        """Write what was noted since the last flush; returns how many credentials were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        if pending:
            record_last_used(database, {cid: datetime.fromtimestamp(t, UTC) for cid, t in pending.items()})
        return len(pending)
