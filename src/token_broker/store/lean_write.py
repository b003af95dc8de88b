"""A write transaction on the pool's DB-API connection, without SQLAlchemy's Session or Connection, for the hottest
write (the common refresh grant, whose statements all run on the driver's cursor: store.raw_statements).

Making a Session, checking its connection out and in through the Connection, beginning, committing and running the
Session's commit hooks cost about a fifth of a whole refresh request. Here the transaction is the driver's own:
`BEGIN IMMEDIATE` and `COMMIT` on SQLite (the sqlite3 module leaves transaction control to us, store.database), on
PostgreSQL psycopg's implicit transaction and `commit()`. Database.lean_write keeps everything else a write has:
this process's SQLite writers' lock, the changed credentials announced to the hooks once (and only if) it commits.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError


class LeanWrite:
    """One open lean transaction: its dialect, its DB-API connection, the credentials it changed."""

    __slots__ = ("changed", "dbapi_connection", "dialect")

    def __init__(self, dialect: Dialect, dbapi_connection: Any) -> None:
        self.dialect = dialect
        self.dbapi_connection = dbapi_connection
        self.changed: list[str] = []

    def run(self, sql: str, call: Any) -> None:
        """`call()` (a BEGIN, a COMMIT, a ROLLBACK on the driver), a driver error raised as SQLAlchemy's."""
        error_type: type[Exception] = self.dialect.loaded_dbapi.Error
        try:
            call()
        except error_type as error:
            raise DBAPIError.instance(sql, None, error, error_type, dialect=self.dialect) from error
