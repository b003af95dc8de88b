"""PostgreSQL LISTEN for credential changes: one dedicated connection per instance, outside the pool, that hears the
NOTIFY that every change note sends (a trigger on `credential_changes`) when a rotation, revocation or disconnect
commits, whichever instance (or the CLI) made it.

The connection is psycopg's asyncio connection, so waiting for notifications never blocks the event loop nor holds a
worker thread. When it drops it is made again (logged once per outage, then when listening again); a notification
sent meanwhile is lost, which the polled change notes (`services.credential_changes`) cover within their poll interval.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from token_broker.store.database import normalize_url

if TYPE_CHECKING:
    from psycopg import AsyncConnection

log = logging.getLogger("token_broker.guard")
CHANGES_CHANNEL = "token_broker_changes"
IDLE_CHECK_SECONDS = 15.0  # with no notification for this long, ask the server whether the connection still works
CHECK_TIMEOUT_SECONDS = 5.0
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)
APPLICATION_NAME = "token-broker-listen"  # how the connection shows in pg_stat_activity


def libpq_url(database_url: str) -> str:
    """The plain libpq URL psycopg connects with, from the store's SQLAlchemy URL."""
    return normalize_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


class ChangeListener:
    """LISTENs on CHANGES_CHANNEL and calls `on_change(credential id)` for each notification, on the event loop."""

    def __init__(self, database_url: str, on_change: Callable[[str], None]) -> None:
        self._url = libpq_url(database_url)
        self._on_change = on_change
        self.listening = False
        self.notifications = 0
        self.connections_lost = 0

    async def run_forever(self) -> None:
        import psycopg  # the `postgres` extra: only instances on PostgreSQL get here

        failures = 0
        down_since: float | None = None
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, connect_timeout=5, application_name=APPLICATION_NAME
                )
                try:
                    await conn.execute(f"LISTEN {CHANGES_CHANNEL}")
                    self.listening, failures = True, 0
                    if down_since is not None:
                        log.info("listening for credential changes again after %.1f s", time.monotonic() - down_since)
                        down_since = None
                    await self._listen(conn)
                finally:
                    # Not `async with`: its exit awaits a rollback first, which a cancelled anyio scope cancels
                    # again, so the connection was left open for the garbage collector at shutdown.
                    with anyio.CancelScope(shield=True):
                        await conn.close()
            except (psycopg.Error, OSError, TimeoutError) as error:
                if self.listening or down_since is None:
                    self.connections_lost += int(self.listening)
                    log.warning(
                        "the LISTEN connection for credential changes failed (%s); reconnecting, and polling the "
                        "change notes meanwhile",
                        type(error).__name__,
                    )
                    down_since = time.monotonic()
                self.listening = False
            await anyio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
            failures += 1

    async def _listen(self, conn: AsyncConnection[Any]) -> None:
        while True:
            async for notify in conn.notifies(timeout=IDLE_CHECK_SECONDS):
                self.notifications += 1
                self._on_change(notify.payload)
            with anyio.fail_after(CHECK_TIMEOUT_SECONDS):  # a half-open connection would otherwise wait forever
                await conn.execute("SELECT 1")
