"""PostgreSQL connections as a server uses them: a connection opened under load stays pooled (no server process
started per request), a pooled connection the server hung up on is replaced when taken, a healthy one is taken
without a round trip, and a change note notifies the listening instances from the store itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, text

from token_broker.config import Settings
from token_broker.services.credential_changes import note_change
from token_broker.store.change_listener import CHANGES_CHANNEL, libpq_url
from token_broker.store.database import Database

pytestmark = pytest.mark.postgres
IN_FLIGHT = 12  # more than the old pool of 5 kept, fewer than the 15 a process may open


@pytest.fixture
def served(postgres_url: str) -> Iterator[Database]:
    """The store as `serve` opens it: the pool sized by the default settings."""
    database = Database(postgres_url, **Settings.from_env({"TOKEN_BROKER_DATABASE_URL": postgres_url}).pool_options())
    yield database
    database.dispose()


def backend_pid(database: Database) -> int:
    with database.read() as session:
        return int(session.scalar(text("SELECT pg_backend_pid()")) or 0)


def test_connections_opened_under_load_stay_in_the_pool(served: Database) -> None:
    opened: list[Any] = []
    event.listen(served.engine, "connect", lambda connection, _record: opened.append(connection))
    together = threading.Barrier(IN_FLIGHT)

    def transaction() -> None:
        with served.read() as session:
            session.execute(text("SELECT 1"))
            together.wait(timeout=60)  # every thread holds its connection at once

    for _ in range(3):
        threads = [threading.Thread(target=transaction) for _ in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(opened) == IN_FLIGHT  # the second and third rounds reused them all


def test_a_connection_the_server_ended_is_replaced_when_taken(served: Database, postgres_url: str) -> None:
    ended = backend_pid(served)  # pooled now, idle
    other = Database(postgres_url)
    with other.write() as session:
        assert session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": ended})
    deadline = time.monotonic() + 30
    while True:  # the server process ends on its own time
        with other.read() as session:
            if not session.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": ended}):
                break
        assert time.monotonic() < deadline, "the terminated server process did not end"
        time.sleep(0.05)
    other.dispose()
    assert backend_pid(served) != ended  # answered, on a new connection


def test_a_healthy_pooled_connection_is_taken_without_a_ping(served: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    backend_pid(served)
    pings: list[object] = []
    ping = served.engine.dialect.do_ping
    monkeypatch.setattr(
        served.engine.dialect, "do_ping", lambda connection: pings.append(connection) or ping(connection)
    )
    first = backend_pid(served)
    assert backend_pid(served) == first
    assert pings == []


def test_a_change_note_notifies_from_the_store_in_one_statement(served: Database, postgres_url: str) -> None:
    statements: list[str] = []
    event.listen(served.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with psycopg.connect(libpq_url(postgres_url), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANGES_CHANNEL}")
        with served.write() as session:  # a rolled-back note notifies nobody
            note_change(session, "rolledback")
            session.rollback()
        with served.write() as session:
            note_change(session, "abcdef123456")
        heard = [notice.payload for notice in listener.notifies(timeout=30, stop_after=1)]
    assert heard == ["abcdef123456"]
    assert len(statements) == 2 and all(
        statement.startswith("INSERT INTO credential_changes") for statement in statements
    )
