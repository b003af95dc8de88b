"""Engines and sessions. No module-level engine: a Database is made by whoever owns its lifetime (app, CLI, test).

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with BEGIN IMMEDIATE, so two writers
queue for the lock instead of one failing with "database is locked". PostgreSQL uses row locks where requests race.

On PostgreSQL the pool hands out the most recently used connection first (its prepared statements and the server's
caches are warm; the rest stay idle), and a connection taken from the pool is checked for a server that hung up on
it by looking at its socket, not by a round trip: an idle connection has nothing to read unless the server closed it
(a restart, `pg_terminate_backend`, an idle timeout) or sent a notice, and only then is it pinged. A connection found
dead drops every connection pooled before it, as SQLAlchemy's pre-ping does.

A write transaction that changed a credential says so with `changed_credential(session, id)`; once (and only if) it
commits, every hook given to `on_credential_change` is called with each such id, in the committing thread, before
`write()` returns. So whatever answers after the write (a revocation's 200) is sent after this instance's guard forgot
the credential, whichever path made the change.
"""

from __future__ import annotations

import logging
import select
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, InvalidatePoolError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import PoolProxiedConnection

from token_broker.store.lean_write import LeanWrite

log = logging.getLogger("token_broker.store")
SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "token_broker_write"
_CHANGED = "token_broker_changed_credentials"


def normalize_url(url: str) -> URL:
    """SQLAlchemy URL for a database URL; plain postgres:// and postgresql:// URLs use psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str, **engine_options: Any) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"check_same_thread": False}, **engine_options)
        _configure_sqlite(engine)
        return engine
    engine = create_engine(parsed, pool_use_lifo=True, **engine_options)
    _configure_postgres(engine)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so that "begin" below decides how each one starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        begin = "BEGIN IMMEDIATE" if connection.get_execution_options().get(_WRITE_OPTION, False) else "BEGIN"
        try:  # on the DB-API connection: through exec_driver_sql it cost a tenth of a refresh grant's CPU
            connection.connection.driver_connection.execute(begin)  # type: ignore[union-attr]
        except sqlite3.Error as error:
            raise OperationalError(begin, None, error) from error


def _configure_postgres(engine: Engine) -> None:
    dialect = engine.dialect

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if not _may_have_hung_up(dbapi_connection):
            return
        try:
            dialect.do_ping(dbapi_connection)  # a notice waiting, or the server gone: only a round trip tells
        except dialect.loaded_dbapi.Error as error:
            raise InvalidatePoolError(f"the server closed a pooled connection: {error}") from error


def _may_have_hung_up(dbapi_connection: Any) -> bool:
    """True when an idle connection is closed or its socket has something to read (nothing is expected)."""
    if dbapi_connection.closed:
        return True
    try:
        socket = dbapi_connection.fileno()
    except Exception:  # psycopg raises once it knows the connection is gone
        return True
    poller = select.poll()
    poller.register(socket, select.POLLIN)
    return bool(poller.poll(0))


class Database:
    """One store: an engine and the two kinds of transaction the services use."""

    def __init__(self, url: str, **engine_options: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_options)
        self._write_engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        self._writes = sessionmaker(self._write_engine, expire_on_commit=False)
        self._change_hooks: list[Callable[[str], None]] = []
        # Reentrant: a write opened inside another in the same thread meets SQLite's busy timeout, as it always did.
        self._writer = threading.RLock() if self.engine.dialect.name == "sqlite" else None
        self._lean_connection: PoolProxiedConnection | None = None  # SQLite: kept between lean writes
        event.listen(self._writes, "after_commit", self._announce_changes)
        event.listen(self._writes, "after_rollback", _drop_changes)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that holds the write lock from its start on SQLite; commits on success, rolls back on error.

        On SQLite this process's writers also queue on a lock of their own before BEGIN IMMEDIATE: a writer that
        finds the database locked sleeps in SQLite's busy handler (1 ms, 2 ms, 5 ms, ... up to 100 ms) and may
        sleep on after the lock is free, while a thread waiting here wakes when the writer before it ends. Writers
        of other processes (the CLI) still meet the busy timeout. The wait here is bounded by the same timeout and
        ends in the same error."""
        with self._write_turn(), self._writes() as session, session.begin():
            yield session

    @contextmanager
    def lean_write(self) -> Iterator[LeanWrite]:
        """A write transaction on the pool's DB-API connection, no Session (store.lean_write): for statements run on
        its cursor only. Same lock as write() (this process's SQLite writers' queue, then BEGIN IMMEDIATE); commits on
        success and announces the credentials it changed, rolls back on error.

        On SQLite the lean writes keep one connection out of the pool between them (they take turns on the writers'
        lock anyway): checking it out and in again cost about a twentieth of a refresh request. One that ended in an
        error goes back to the pool."""
        with self._write_turn():
            pooled, self._lean_connection = self._lean_connection or self.engine.raw_connection(), None
            kept = False
            try:
                lean = LeanWrite(self.engine.dialect, pooled.dbapi_connection)
                if self._writer is not None:  # SQLite: the lock from the start, as write()'s BEGIN IMMEDIATE
                    driver = pooled.dbapi_connection
                    lean.run("BEGIN IMMEDIATE", lambda: driver.execute("BEGIN IMMEDIATE"))  # type: ignore[union-attr]
                try:
                    yield lean
                except BaseException as error:
                    if _lost(self.engine, pooled, error):  # as a Session's connection would be: never pooled again
                        pooled.invalidate(error)
                        raise
                    lean.run("ROLLBACK", pooled.rollback)
                    raise
                lean.run("COMMIT", pooled.commit)
                kept = self._writer is not None and self._lean_connection is None
            finally:
                if kept:
                    self._lean_connection = pooled
                else:
                    pooled.close()
            self._announce(lean.changed)

    @contextmanager
    def _write_turn(self) -> Iterator[None]:
        if self._writer is None:
            yield
            return
        if not self._writer.acquire(timeout=SQLITE_BUSY_TIMEOUT_MS / 1000):
            # What BEGIN IMMEDIATE would have raised after its busy timeout: this process's writer still holds it.
            raise OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError("database is locked"))
        try:
            yield
        finally:
            self._writer.release()

    def on_credential_change(self, hook: Callable[[str], None]) -> Callable[[], None]:
        """Call `hook(credential id)` after each commit that changed that credential; returns how to stop."""
        self._change_hooks.append(hook)
        return lambda: self._change_hooks.remove(hook)

    def _announce_changes(self, session: Session) -> None:
        self._announce(session.info.pop(_CHANGED, []))

    def _announce(self, changed: list[str]) -> None:
        for credential_id in dict.fromkeys(changed):
            for hook in list(self._change_hooks):
                try:
                    hook(credential_id)
                except Exception:  # the commit stands; the polled change notes still reach the hook's owner
                    log.exception("a credential change hook failed")

    def dispose(self) -> None:
        kept, self._lean_connection = self._lean_connection, None
        if kept is not None:
            kept.close()
        self.engine.dispose()


def _lost(engine: Engine, pooled: PoolProxiedConnection, error: BaseException) -> bool:
    """Whether a lean write's error says its connection is gone (the server closed it)."""
    cause = error.orig if isinstance(error, DBAPIError) else error
    dialect = engine.dialect
    return isinstance(cause, dialect.loaded_dbapi.Error) and dialect.is_disconnect(cause, pooled.dbapi_connection, None)


def table_of(model: type[Any]) -> Table:
    """A mapped class's table, for Core statements built once and run without the ORM's per-call work."""
    table: Table = model.__table__
    return table


def changed_credential(session: Session | LeanWrite, credential_id: str) -> None:
    """Note, in a write transaction, that it changes this credential: announced to the hooks once it commits."""
    if isinstance(session, LeanWrite):
        session.changed.append(credential_id)
        return
    session.info.setdefault(_CHANGED, []).append(credential_id)


def _drop_changes(session: Session) -> None:
    session.info.pop(_CHANGED, None)
