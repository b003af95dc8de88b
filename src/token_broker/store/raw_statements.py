"""Fixed SQL run on the DB-API cursor of a session's transaction, for the hottest path (the refresh grant).

SQLAlchemy's execution of a statement, even one built once, costs 100 to 200 µs of Python (the execution context, the
result machinery, events); the driver's cursor runs the same SQL for a tenth of that. One text serves both stores: it
is written with `:name` parameters and compiled once per dialect by SQLAlchemy (SQLite's `?`; psycopg's `%(name)s`,
with the casts SQLAlchemy adds there), and each parameter that needs it goes through its column type's own bind
processor (a datetime as SQLite stores it, JSON), so the raw path writes exactly what the ORM writes. Statements run
in the session's transaction, on its connection: the session still begins (SQLite's BEGIN IMMEDIATE), commits and
announces changed credentials as for any other write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeEngine

from token_broker.store.lean_write import LeanWrite

Processor = Callable[[Any], Any]
_IMMUTABLE = frozenset({datetime, str, int})
_BIND_PROCESSORS: dict[tuple[int, str], tuple[TypeEngine[Any], Processor | None]] = {}


def _bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor | None:
    """The type's bind processor on the dialect, one for each type object, so statements sharing a type object
    share the processor (and a cursor's memo of its last result)."""
    key = (id(type_), dialect.name)
    found = _BIND_PROCESSORS.get(key)
    if found is None or found[0] is not type_:
        found = _BIND_PROCESSORS[key] = (type_, type_.dialect_impl(dialect).bind_processor(dialect))
    return found[1]


def _processed(processor: Processor, value: Any, memo: dict[Processor, tuple[Any, Any]]) -> Any:
    if type(value) not in _IMMUTABLE:
        return processor(value)
    last = memo.get(processor)
    if last is not None and last[0] is value:  # the very object, still referenced by the memo: same result
        return last[1]
    result = processor(value)
    memo[processor] = (value, result)
    return result


class _Compiled:
    """A statement's text for one dialect, its parameters' order (positional paramstyles) and bind processors."""

    __slots__ = ("order", "processors", "results", "sql")

    def __init__(self, statement: RawStatement, dialect: Dialect) -> None:
        clause = text(statement.sql + statement.suffixes.get(dialect.name, ""))
        clause = clause.bindparams(*(bindparam(name, type_=type_) for name, type_ in statement.types.items()))
        compiled = clause.compile(dialect=dialect)
        self.sql = compiled.string
        self.order: tuple[str, ...] | None = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.processors: dict[str, Processor] = {}
        for name, type_ in statement.types.items():
            processor = _bind_processor(type_, dialect)
            if processor is not None:
                self.processors[name] = processor
        self.results: tuple[tuple[int, Processor], ...] = tuple(
            (index, processor)
            for index, type_ in statement.results.items()
            if (processor := type_.dialect_impl(dialect).result_processor(dialect, None)) is not None
        )

    def parameters(self, values: Mapping[str, Any], memo: dict[Processor, tuple[Any, Any]]) -> Any:
        """The driver's parameters (a tuple or a dict, as its paramstyle wants). `memo`, one per cursor, keeps each
        processor's last value and result: a request binds its one timestamp in several statements."""
        bound = dict(values)
        for name, processor in self.processors.items():
            value = bound.get(name)
            if value is not None:
                bound[name] = _processed(processor, value, memo)
        if self.order is None:
            return bound
        return tuple([bound[name] for name in self.order])

    def row(self, found: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
        if found is None or not self.results:
            return found
        values = list(found)
        for index, processor in self.results:
            values[index] = processor(values[index])
        return tuple(values)


class RawStatement:
    """One SQL text with `:name` parameters. `types`: the parameters that need their column type's bind processing;
    `results`: result columns (by position) that need the type's result processing; `suffixes`: text appended on
    one dialect only (a row lock, a NOTIFY), keyed by dialect name."""

    def __init__(
        self,
        sql: str,
        types: Mapping[str, TypeEngine[Any]] | None = None,
        results: Mapping[int, TypeEngine[Any]] | None = None,
        suffixes: Mapping[str, str] | None = None,
    ) -> None:
        self.sql = " ".join(sql.split())
        self.types = dict(types or {})
        self.results = dict(results or {})
        self.suffixes = dict(suffixes or {})
        self._compiled: dict[str, _Compiled] = {}

    def compiled(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            found = self._compiled[dialect.name] = _Compiled(self, dialect)
        return found


class RawCursor:
    """A DB-API cursor on the connection of a session's transaction (begun here if it was not yet), or of a lean
    write (store.lean_write)."""

    __slots__ = ("_cursor", "_error", "_memo", "dialect")

    def __init__(self, session: Session | LeanWrite) -> None:
        if isinstance(session, LeanWrite):
            self.dialect = session.dialect
            self._cursor = session.dbapi_connection.cursor()
        else:
            connection = session.connection()
            self.dialect = connection.dialect
            self._cursor = connection.connection.cursor()
        self._error: type[Exception] = self.dialect.loaded_dbapi.Error
        self._memo: dict[Processor, tuple[Any, Any]] = {}

    def execute(self, statement: RawStatement, values: Mapping[str, Any]) -> int:
        """Run the statement; the number of rows it changed (for an UPDATE or DELETE)."""
        compiled = statement.compiled(self.dialect)
        parameters = compiled.parameters(values, self._memo)
        try:
            self._cursor.execute(compiled.sql, parameters)
        except self._error as error:  # as SQLAlchemy would raise it, parameters (hashes) left out
            raise DBAPIError.instance(
                compiled.sql, parameters, error, self._error, hide_parameters=True, dialect=self.dialect
            ) from error
        rowcount: int = self._cursor.rowcount
        return rowcount

    def one_or_none(self, statement: RawStatement, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """The statement's first row (result columns processed), or None."""
        self.execute(statement, values)
        return statement.compiled(self.dialect).row(self._cursor.fetchone())

    def close(self) -> None:
        self._cursor.close()
