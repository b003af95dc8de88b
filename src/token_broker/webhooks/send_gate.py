"""The send gate, shared by every delivery a worker has in flight: the last check before a request's first byte.

Each request, once its connection is up and before its first byte is written (its `Passage`, `transport.Passage`),
takes a ticket and waits. The gate runs rounds: a round takes every ticket waiting, opens ONE store transaction that
holds all their hooks' rows (`deliveries.send_gate_many`: `FOR SHARE` on PostgreSQL, the write lock on SQLite),
checks every claim in one query, lets the allowed requests go on, and commits only once each of them has been
written (or failed, or `limit_seconds` passed). Tickets that arrive meanwhile wait for the next round, so under load
a round serves many deliveries and when idle a lone delivery goes through at once.

Why that keeps the promise (no request of a hook starts after its disabling commits): every way a hook ends updates
its row, and that update waits while a round holds the row; a round that starts after the commit sees the hook
ended and lets nothing through. The transaction is held by a thread of the default pool (the store's API is
synchronous); the event loop only waits on events.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import anyio
from anyio import from_thread, to_thread

from token_broker.services import deliveries
from token_broker.services.deliveries import Job
from token_broker.store.database import Database
from token_broker.store.models import utcnow

log = logging.getLogger("token_broker.webhooks")


class DeliveryCancelled(Exception):
    """The delivery was cancelled (hook disabled or deleted, owner ended, claim lost) before its request started."""


class StoreBusy(Exception):
    """The check before sending could not be made in time; nothing was sent."""


class Ticket:
    """One request's place at the gate."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self.allowed: bool | None = None  # None: not decided (yet), or the store could not be asked
        self.abandoned = False  # the request stopped waiting: whatever the round decides, it does not go on
        self.decided = asyncio.Event()  # asyncio's: an anyio.Event costs 7 µs to make, this 1
        self.on_release: Callable[[], None] | None = None  # set by the round that let it through

    def release(self) -> None:
        """The request has been written (or failed): the round need not hold its hook for it any longer."""
        if self.on_release is not None:
            on_release, self.on_release = self.on_release, None
            on_release()


class SendGate:
    def __init__(self, database: Database, limit_seconds: float) -> None:
        self.database, self.limit_seconds = database, limit_seconds
        self.rounds = 0  # how many store transactions the gate has taken, for tests and benchmarks
        self._waiting: list[Ticket] = []
        self._wake = anyio.Event()

    async def wait(self, job: Job) -> Ticket:
        """Wait for a round to decide on this job: returns its ticket (release it once the request is written);
        DeliveryCancelled when the job may not be sent, StoreBusy when no decision came within the limit."""
        ticket = Ticket(job)
        self._waiting.append(ticket)
        self._wake.set()
        try:
            with anyio.move_on_after(self.limit_seconds):
                await ticket.decided.wait()
        except BaseException:  # cancelled: the request will not be written, whatever was decided
            ticket.release()
            raise
        finally:
            if ticket.allowed is None:  # not decided in time, or the store failed: never let it go on
                ticket.abandoned = True
                if ticket in self._waiting:
                    self._waiting.remove(ticket)
        if ticket.allowed is None:
            raise StoreBusy()
        if not ticket.allowed:
            raise DeliveryCancelled()
        return ticket

    async def run(self) -> None:
        """The rounds, one after another, for as long as the worker runs."""
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            tickets, self._waiting = [ticket for ticket in self._waiting if not ticket.abandoned], []
            if tickets:
                await self._round(tickets)

    async def _round(self, tickets: list[Ticket]) -> None:
        self.rounds += 1
        written = threading.Event()

        def decide(allowed: set[int]) -> None:  # on the event loop, so tickets change hands in one thread only
            outstanding = 0

            def one_written() -> None:
                nonlocal outstanding
                outstanding -= 1
                if outstanding == 0:
                    written.set()

            for ticket in tickets:
                if ticket.abandoned:
                    continue
                ticket.allowed = ticket.job.delivery_id in allowed
                if ticket.allowed:
                    outstanding += 1
                    ticket.on_release = one_written
                ticket.decided.set()
            if outstanding == 0:
                written.set()

        def hold() -> None:
            try:
                with deliveries.send_gate_many(self.database, [ticket.job for ticket in tickets], utcnow()) as allowed:
                    from_thread.run_sync(decide, allowed)
                    written.wait(self.limit_seconds)
            except Exception:
                log.warning("webhook worker: the send gate could not check %d deliveries", len(tickets), exc_info=True)

        await to_thread.run_sync(hold)
        for ticket in tickets:  # the store failed before deciding: let those waiting know at once
            ticket.decided.set()
