"""Counting the statements a benchmark's store runs, whichever way they are sent: through SQLAlchemy, or on the DB-API
cursor (store.raw_statements, the refresh grant's common case). On SQLite every statement the library runs is counted
(its trace callback), BEGIN and COMMIT included; on PostgreSQL those SQLAlchemy sends and the raw ones, COMMIT not.
Transactions: those SQLAlchemy begins and the lean writes (store.lean_write)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from token_broker.store.lean_write import LeanWrite
from token_broker.store.raw_statements import RawCursor

COUNTS = {"statements": 0, "transactions": 0}
WHAT_IS_COUNTED = {
    "sqlite": "every statement SQLite ran, BEGIN and COMMIT included",
    "postgresql": "statements sent, BEGIN and COMMIT not counted",
}


def count_statements() -> dict[str, int]:
    """Start counting, on every engine made from now on; returns the counts, to reset and read."""

    def statement(*_: Any) -> None:
        COUNTS["statements"] += 1

    def connected(dbapi_connection: Any, _record: Any) -> None:
        if hasattr(dbapi_connection, "set_trace_callback"):  # sqlite3
            dbapi_connection.set_trace_callback(statement)

    def sent(connection: Any, *_: Any) -> None:
        if connection.dialect.name != "sqlite":
            statement()

    def began(*_: Any) -> None:
        COUNTS["transactions"] += 1

    event.listen(Engine, "connect", connected)
    event.listen(Engine, "before_cursor_execute", sent)
    event.listen(Engine, "begin", began)
    execute = RawCursor.execute

    def counted(cursor: RawCursor, statement_: Any, values: Any) -> int:
        if cursor.dialect.name != "sqlite":
            statement()
        return execute(cursor, statement_, values)

    RawCursor.execute = counted  # type: ignore[method-assign]
    lean_init = LeanWrite.__init__

    def lean_began(lean: LeanWrite, *args: Any) -> None:  # a lean write (store.lean_write) is a transaction too
        began()
        lean_init(lean, *args)

    LeanWrite.__init__ = lean_began  # type: ignore[method-assign]
    return COUNTS
