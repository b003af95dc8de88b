"""The LISTEN connection: dropped and made again (logged), with the polled notes covering the gap; and with LISTEN
switched off, the polled notes alone still end a credential everywhere.

How fast is a benchmark's business (`scripts/bench scale`); these tests assert which path carried the change (a
notification heard, or the polled notes alone) with bounds generous enough for a busy machine."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from sqlalchemy import text

from tests.live import LiveServer, live_server
from tests.makers import Keys
from tests.support import CHEAP_HASHING, Team
from token_broker.credentials import SecretHasher
from token_broker.services import keys
from token_broker.store.change_listener import APPLICATION_NAME
from token_broker.store.database import Database

pytestmark = pytest.mark.postgres


def assert_refused_within(live: LiveServer, key: str, seconds: float) -> None:
    """Asks the server (every 10 ms) until it refuses the key. Called right after the change committed: a request
    sent `seconds` or more after the call and still accepted breaks the promise. The send time is what counts, not
    the answer's: a request sent in time and answered late by a busy machine was accepted within the window."""
    started = time.monotonic()
    with live.client() as client:
        while True:
            sent = time.monotonic() - started
            if client.get("/v1/me", headers={"Authorization": f"Bearer {key}"}).status_code != 200:
                return
            assert sent < seconds, f"still accepted {sent:.2f} s after the change"
            time.sleep(0.01)


def wait_for(condition: object, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_dropped_listen_connection_is_made_again(
    postgres_url: str, pg_database: Database, pg_team: Team, caplog: pytest.LogCaptureFixture
) -> None:
    make = Keys(pg_database, SecretHasher(CHEAP_HASHING), pg_team)
    first, second = make.workspace_key(), make.workspace_key()
    with live_server(postgres_url) as live, caplog.at_level(logging.INFO, logger="token_broker.guard"):
        listener = live.app.state.change_listener
        wait_for(lambda: listener.listening, 10)
        with live.client() as client:
            for issued in (first, second):
                assert client.get("/v1/me", headers={"Authorization": f"Bearer {issued.plaintext}"}).status_code == 200
        with pg_database.write() as session:
            ended = session.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name "
                    "AND datname = current_database()"
                ),
                {"name": APPLICATION_NAME},
            ).all()
        assert len(ended) == 1
        wait_for(lambda: not listener.listening, 5)
        keys.revoke_key(pg_database, pg_team.admin, first.view.id)  # notification lost: the notes cover it
        assert_refused_within(live, first.plaintext, 1.0)
        wait_for(lambda: listener.listening, 10)
        heard = listener.notifications
        keys.revoke_key(pg_database, pg_team.admin, second.view.id)
        assert_refused_within(live, second.plaintext, 1.0)
        wait_for(lambda: listener.notifications > heard, 10)  # heard through LISTEN again, not only the notes
        assert listener.connections_lost == 1
        text_out = httpx.get(f"{live.base_url}/metrics").text
        assert "token_broker_change_listener_connections_lost_total 1.0" in text_out
    messages = [record.getMessage() for record in caplog.records]
    assert sum("LISTEN connection for credential changes failed" in message for message in messages) == 1
    assert sum("listening for credential changes again" in message for message in messages) == 1


def test_polling_alone_still_ends_a_key(postgres_url: str, pg_database: Database, pg_team: Team) -> None:
    issued = Keys(pg_database, SecretHasher(CHEAP_HASHING), pg_team).workspace_key()
    with live_server(postgres_url, listen_notify=False) as live:
        with live.client() as client:
            assert client.get("/v1/me", headers={"Authorization": f"Bearer {issued.plaintext}"}).status_code == 200
        assert "token_broker_change_listener_up" not in httpx.get(f"{live.base_url}/metrics").text
        keys.revoke_key(pg_database, pg_team.admin, issued.view.id)
        assert_refused_within(live, issued.plaintext, 1.0)


def test_a_cancelled_listener_closes_its_connection(postgres_url: str, pg_database: Database) -> None:
    """Shutting an instance down cancels its listener in an anyio scope, which cancels every await after it. The
    connection must still be closed then, not left open for the garbage collector (a ResourceWarning at best)."""
    import anyio

    from token_broker.store.change_listener import ChangeListener

    def listen_connections() -> int:
        with pg_database.engine.connect() as connection:
            query = text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name AND pid <> pg_backend_pid()"
            )
            return int(connection.execute(query, {"name": APPLICATION_NAME}).scalar_one())

    before = listen_connections()
    closed_by_then: list[bool] = []

    async def main() -> None:
        listener = ChangeListener(postgres_url, lambda _credential: None)
        async with anyio.create_task_group() as group:
            group.start_soon(listener.run_forever)
            with anyio.fail_after(30):
                while not listener.listening:
                    await anyio.sleep(0.02)
            group.cancel_scope.cancel()
        closed_by_then.append(True)

    anyio.run(main)
    assert closed_by_then == [True]
    deadline = time.monotonic() + 30
    while listen_connections() > before:  # the server ends the backend once the client has closed its socket
        assert time.monotonic() < deadline, "the listener's connection is still open after it was cancelled"
        time.sleep(0.05)
