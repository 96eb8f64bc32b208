"""SQLAlchemy statements compiled once, executed on a raw DB-API cursor.

The ingestion path runs a handful of fixed statements per request. Compiling them once per
dialect and executing them directly on the driver's cursor removes SQLAlchemy's
per-execution work (cache look-up, context and result objects) while keeping the SQL
portable: the statement, its parameter style and its type conversions all come from
SQLAlchemy for whichever database the engine talks to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement


class CompiledStatement:
    """One statement compiled for one dialect, with its bind-parameter conversions."""

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: list[str] | None = None
    ):
        # SQLCompiler (what a statement compiles to here) has positiontup and binds.
        compiled: Any = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql = str(compiled)
        self.positional = dialect.positional
        names = list(compiled.positiontup) if self.positional else list(compiled.params)
        self._names = names
        # Values SQLAlchemy bound itself (literals in the statement, e.g. CASE … THEN 1).
        defaults = compiled.params
        # (name, value when absent), in the driver's order, and the positions that need the
        # dialect's own conversion (e.g. SQLite's DATETIME to text), as SQLAlchemy applies it.
        self._fields = [(name, defaults.get(name)) for name in names]
        self._conversions: list[tuple[int, str, Callable[[Any], Any]]] = []
        for index, name in enumerate(names):
            processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self._conversions.append((index, name, processor))

    def params(self, values: dict[str, Any], memo: dict | None = None) -> tuple | dict:
        """Convert named values into what the driver expects (order, style, types).

        `memo` caches conversions across the rows of one batch (rows share timestamps).
        """
        converted = [values.get(name, default) for name, default in self._fields]
        for index, name, processor in self._conversions:
            value = converted[index]
            if value is None:
                continue
            if memo is None:
                converted[index] = processor(value)
                continue
            key = (name, value)
            hit = memo.get(key)
            if hit is None:
                hit = memo[key] = processor(value)
            converted[index] = hit
        if self.positional:
            return tuple(converted)
        return dict(zip(self._names, converted, strict=True))

    def execute(self, cursor, values: dict[str, Any]):
        """Execute with one set of values on a DB-API cursor."""
        cursor.execute(self.sql, self.params(values))
        return cursor

    def executemany(self, cursor, rows: list[dict[str, Any]]) -> None:
        """Execute once per row, in one driver call."""
        self.execute_bound(cursor, self.bind(rows))

    def bind(self, rows: list[dict[str, Any]]) -> list[tuple | dict]:
        """The driver's parameters for each row, converted ahead of execute_bound (so that
        a caller can do it before taking a lock)."""
        if len(rows) == 1:
            return [self.params(rows[0])]
        memo: dict = {}
        return [self.params(row, memo) for row in rows]

    def execute_bound(self, cursor, bound: list[tuple | dict]) -> None:
        """Execute once per set of parameters from ``bind``, in one driver call."""
        if len(bound) == 1:
            cursor.execute(self.sql, bound[0])
        else:
            cursor.executemany(self.sql, bound)


class StatementCache:
    """Compile each statement lazily, once per dialect."""

    def __init__(self, builders: dict[str, Callable[[Dialect], CompiledStatement]]):
        self._builders = builders
        self._compiled: dict[tuple[str, str], CompiledStatement] = {}

    def get(self, name: str, dialect: Dialect) -> CompiledStatement:
        """Return the compiled form of statement `name` for `dialect`."""
        key = (name, dialect.name)
        statement = self._compiled.get(key)
        if statement is None:
            statement = self._compiled[key] = self._builders[name](dialect)
        return statement


def driver_rows(connection, statement: ClauseElement, batch: int = 5_000) -> Iterator[tuple]:
    """A Core statement's rows as the driver's own tuples, fetched in batches, on the
    connection's transaction (the statement's IN lists must be literal: no expanding
    parameters).

    No Row object is built per row and no result type is converted (SQLite hands times
    over as their stored ISO text): at a million rows that per-row work took longer than
    the query itself.
    """
    compiled = CompiledStatement(statement, connection.dialect)
    cursor = connection.connection.cursor()
    try:
        compiled.execute(cursor, {})
        while rows := cursor.fetchmany(batch):
            yield from rows
    finally:
        cursor.close()
