"""Watching the store for credential changes made elsewhere (another instance, the CLI) and forgetting them here."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

import anyio
from anyio import to_thread
from sqlalchemy.exc import SQLAlchemyError

from token_broker.guard.guard import Guard
from token_broker.services import credential_changes
from token_broker.store.database import Database
from token_broker.store.models import utcnow

log = logging.getLogger("token_broker.guard")
POLL_SECONDS = 0.25
PRUNE_EVERY_POLLS = 4 * 60 * 10
KEEP_NOTES = timedelta(hours=1)


class Remembers(Protocol):
    """Another cache kept by the change notes (the authorization server's remembered clients and tokens)."""

    def forget_change(self, note_id: str) -> None: ...

    def forget_everything(self) -> None: ...


class ChangeWatcher:
    def __init__(self, guard: Guard, database: Database, others: Sequence[Remembers] = ()) -> None:
        self.guard = guard
        self.others = tuple(others)
        self.database = database
        self.newest = 0
        self._seen: OrderedDict[int, None] = OrderedDict()

    def start_point(self) -> None:
        self.newest = credential_changes.newest_change(self.database)

    def poll(self) -> int:
        """Forget every credential with a note not seen before; returns how many notes were new."""
        fresh = 0
        for note_id, credential_id in credential_changes.changes_since(self.database, self.newest, self._missing()):
            if note_id in self._seen:
                continue
            self._seen[note_id] = None
            self.guard.forget(credential_id)
            for other in self.others:
                other.forget_change(credential_id)
            self.newest = max(self.newest, note_id)
            fresh += 1
        while len(self._seen) > 4 * credential_changes.OVERLAP_IDS:
            self._seen.popitem(last=False)
        return fresh

    def _missing(self) -> list[int]:
        """Ids in the overlap below the newest seen that no read found: each a note of a transaction that was still
        open (it may commit yet), rolled back, or pruned. The first poll after start finds them all missing."""
        low = max(self.newest - credential_changes.OVERLAP_IDS, 0)
        return [note_id for note_id in range(low + 1, self.newest + 1) if note_id not in self._seen]

    async def run_forever(self) -> None:
        await to_thread.run_sync(self.start_point)
        polls = 0
        while True:
            await anyio.sleep(POLL_SECONDS)
            polls += 1
            try:
                await to_thread.run_sync(self.poll)
                if polls % PRUNE_EVERY_POLLS == 0:
                    await to_thread.run_sync(credential_changes.prune_changes, self.database, utcnow() - KEEP_NOTES)
            except SQLAlchemyError:
                # Until the store answers again, nothing cached can be trusted to be current.
                log.warning("could not read credential changes; dropping the verification cache")
                self.guard.cache.clear()
                for other in self.others:
                    other.forget_everything()
