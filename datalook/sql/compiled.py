"""SQLAlchemy statements compiled once, executed on a raw DB-API cursor.

The ingestion path runs a handful of fixed statements per request. Compiling them once per
dialect and executing them directly on the driver's cursor removes SQLAlchemy's
per-execution work (cache look-up, context and result objects) while keeping the SQL
portable: the statement, its parameter style and its type conversions all come from
SQLAlchemy for whichever database the engine talks to.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from itertools import repeat
from typing import Any

from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, Insert


class CompiledStatement:
    """One statement compiled for one dialect, with its bind-parameter conversions."""

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: list[str] | None = None
    ):
        # SQLCompiler (what a statement compiles to here) has positiontup and binds.
        compiled: Any = statement.compile(dialect=dialect, column_keys=column_keys)
        self._statement, self._dialect, self._column_keys = statement, dialect, column_keys
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
            impl = compiled.binds[name].type.dialect_impl(dialect)
            processor = _quicker(impl, impl.bind_processor(dialect))
            if processor is not None:
                self._conversions.append((index, name, processor))
        self._layouts: dict[tuple[tuple[str, ...], tuple[str, ...]], _Layout] = {}
        self._sparse: dict[tuple[str, ...], _Sparse] = {}
        self._without: dict[tuple[str, ...], CompiledStatement] = {}

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

    def binder(
        self, varying: Sequence[str], constants: dict[str, Any]
    ) -> Callable[[list[tuple]], list[tuple | dict]]:
        """What `bind` does, for rows that share most values: each row gives the values of
        the `varying` columns (a tuple, in that order), `constants` the rest (converted once).

        A batch's rows differ in a dozen columns and share the others; putting each row in
        the driver's order is then one C-level pick per row, not a look-up per column.
        """
        shape = (tuple(varying), tuple(constants))
        layout = self._layouts.get(shape)
        if layout is None:
            layout = self._layouts[shape] = _Layout(self, varying, constants)
        return layout.binder(constants)

    def sparse_binder(
        self, varying: Sequence[str], constants: dict[str, Any]
    ) -> Callable[[list[tuple]], tuple[CompiledStatement, list[tuple | dict]]]:
        """What `binder` does, for an INSERT: each call gives the statement to run and its
        rows. On SQLite the statement leaves out the columns that are NULL in every row
        (this one, or its variant without them, compiled once per set of columns).

        Python's sqlite3 module binds None through its adapter look-up, which raises and
        clears an AttributeError for each one: with the few NULL columns of an event, that
        was a third of the INSERT's time. A column left out of an INSERT is NULL all the
        same; only columns without a default are ever left out.
        """
        bind = self.binder(varying, constants)
        if self._dialect.name != "sqlite" or not isinstance(self._statement, Insert):
            return lambda rows: (self, bind(rows))
        shape = tuple(varying)
        sparse = self._sparse.get(shape)
        if sparse is None:
            sparse = self._sparse[shape] = _Sparse(self, varying)
        return sparse.binder(bind, constants)

    def without(self, names: tuple[str, ...]) -> CompiledStatement:
        """This INSERT without the columns `names`, which are then NULL (compiled once: one
        variant per set of columns NULL in a whole batch, bounded by the table's nullable
        columns; for events, a few sets in practice)."""
        if not names:
            return self
        variant = self._without.get(names)
        if variant is None:
            keys = self._column_keys or [name for name, _ in self._fields]
            variant = CompiledStatement(
                self._statement, self._dialect, [key for key in keys if key not in names]
            )
            self._without[names] = variant
        return variant

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


# Constants' conversions kept per layout: booleans and small integers only.
_CONVERTED_CACHED = 64


def _cacheable(value: object) -> bool:
    """Whether a constant's conversion is worth keeping (it recurs in every batch)."""
    return isinstance(value, bool | int)


class _Layout:
    """Where a statement's parameters come from: a row's varying values, then constants."""

    def __init__(
        self, statement: CompiledStatement, varying: Sequence[str], constants: dict[str, Any]
    ) -> None:
        """Lay out `statement`'s parameters for rows of `varying` values and `constants`."""
        given = {name: index for index, name in enumerate(varying)}
        processors = {name: processor for _, name, processor in statement._conversions}
        # Constants follow a row's own values in the tuple the pick reads from.
        self.constants: list[tuple[str, Any, Callable[[Any], Any] | None]] = []
        order = []
        for name, default in statement._fields:
            if name in given:
                order.append(given[name])
            else:
                order.append(len(given) + len(self.constants))
                self.constants.append((name, default, processors.get(name)))
        unknown = set(given) - {name for name, _ in statement._fields}
        if unknown:
            raise ValueError(f"not parameters of the statement: {sorted(unknown)}")
        # A row's values that the driver takes converted (e.g. SQLite's DATETIME as text).
        self.conversions = [
            (given[name], processor) for name, processor in processors.items() if name in given
        ]
        self.pick = operator.itemgetter(*order) if len(order) > 1 else None
        self.order = order
        self.names = statement._names if not statement.positional else None
        self.converted: dict[tuple[str, Any], Any] = {}

    def binder(self, constants: dict[str, Any]) -> Callable[[list[tuple]], list[tuple | dict]]:
        """The binder of rows that share these constants' values."""
        tail = tuple(self.constant_values(constants))
        conversions, names = self.conversions, self.names
        pick = self.pick or (lambda values: (values[self.order[0]],))

        def bind(rows: list[tuple]) -> list[tuple | dict]:
            """The driver's parameters of each row."""
            if conversions:
                rows = _converted(rows, conversions)
            bound: list = [pick(row + tail) for row in rows]
            if names is not None:
                bound = [dict(zip(names, values, strict=True)) for values in bound]
            return bound

        return bind

    def constant_values(self, constants: dict[str, Any]) -> list[Any]:
        """The values of the statement's other parameters, in its order, converted."""
        values = []
        for name, default, processor in self.constants:
            value = constants.get(name, default)
            if processor is not None and value is not None:
                # The same few values again and again (a source's flags): converted once.
                key = (name, value)
                converted = self.converted.get(key)
                if converted is None:
                    converted = processor(value)
                    if len(self.converted) < _CONVERTED_CACHED and _cacheable(value):
                        self.converted[key] = converted
                value = converted
            values.append(value)
        return values


class _Sparse:
    """Where a positional INSERT's parameters come from when the columns that are NULL in
    every row are left out: a row's varying values, or the constants."""

    def __init__(self, statement: CompiledStatement, varying: Sequence[str]) -> None:
        """Lay out `statement`'s parameters for rows of `varying` values (the constants
        are the rest, as in _Layout)."""
        self.statement = statement
        self.given = {name: index for index, name in enumerate(varying)}
        processors = {name: processor for _, name, processor in statement._conversions}
        self.conversions = [
            (self.given[name], processor)
            for name, processor in processors.items()
            if name in self.given
        ]
        table = statement._statement.table  # type: ignore[attr-defined]
        # Only a column that is NULL when left out: no default of either side.
        self.optional = {
            name
            for name, _ in statement._fields
            if name in table.c
            and table.c[name].default is None
            and table.c[name].server_default is None
        }
        self.varying_optional = [
            (name, self.given[name])
            for name, _ in statement._fields
            if name in self.optional and name in self.given
        ]

    def binder(
        self, full: Callable[[list[tuple]], list[tuple | dict]], constants: dict[str, Any]
    ) -> Callable[[list[tuple]], tuple[CompiledStatement, list[tuple | dict]]]:
        """The binder of rows that share these constants' values (`full`: the binder of
        every column, for a single row)."""
        statement = self.statement
        conversions, given, varying_optional = self.conversions, self.given, self.varying_optional

        def bind(rows: list[tuple]) -> tuple[CompiledStatement, list[tuple | dict]]:
            """The statement for these rows and the driver's parameters of each."""
            count = len(rows)
            if count < 2:  # nothing to share (one event: POST /event): every column
                return statement, full(rows)
            layout = statement._layouts[(tuple(given), tuple(constants))]
            named = dict(
                zip(
                    (name for name, _, _ in layout.constants),
                    layout.constant_values(constants),
                    strict=True,
                )
            )
            # Constants that are NULL are left out of every row.
            null_constants = tuple(
                name for name, value in named.items() if value is None and name in self.optional
            )
            columns: list = list(zip(*rows, strict=True))
            for index, processor in conversions:
                columns[index] = _converted_column(columns[index], processor)
            # Only a column NULL in the first row can be NULL in all (counting a column of
            # strings compares each with None: that is not free).
            first = rows[0]
            absent = null_constants + tuple(
                name
                for name, index in varying_optional
                if first[index] is None and columns[index].count(None) == count
            )
            chosen = statement.without(absent)
            sources = [
                columns[given[name]] if name in given else repeat(named[name], count)
                for name, _ in chosen._fields
            ]
            return chosen, list(zip(*sources, strict=True))

        return bind


def _converted_column(values: tuple, processor: Callable[[Any], Any]) -> list:
    """One column's values with the dialect's conversion, each distinct one converted once
    (a batch's rows share their times)."""
    try:
        done = {value: processor(value) for value in set(values) if value is not None}
    except TypeError:  # unhashable values: one by one
        return [None if value is None else processor(value) for value in values]
    done[None] = None
    return [done[value] for value in values]


def _converted(
    rows: list[tuple], conversions: list[tuple[int, Callable[[Any], Any]]]
) -> list[tuple]:
    """Rows with the dialect's conversions applied, each distinct value converted once
    (a batch's rows share their times)."""
    memo: dict = {}
    done = []
    for row in rows:
        values = list(row)
        for index, processor in conversions:
            value = values[index]
            if value is not None:
                key = (index, value)
                hit = memo.get(key)
                if hit is None:
                    hit = memo[key] = processor(value)
                values[index] = hit
        done.append(tuple(values))
    return done


# SQLite's DATETIME as text, in SQLAlchemy's default storage format: a naive datetime's
# isoformat with a space and microseconds writes the same characters at a fraction of the
# cost (every event binds one or two times).
_SQLITE_DATETIME_FORMAT = sqlite.DATETIME._storage_format


def _quicker(impl: Any, processor: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    """`processor`, or an equal and cheaper one for SQLite's DATETIME in its default format."""
    if (
        processor is None
        or not isinstance(impl, sqlite.DATETIME)
        or impl._storage_format != _SQLITE_DATETIME_FORMAT
    ):
        return processor

    def sqlite_datetime(value: Any) -> Any:
        """SQLAlchemy's text of a datetime: naive ones directly, anything else its way."""
        if type(value) is datetime and value.tzinfo is None:
            return value.isoformat(" ", "microseconds")
        return processor(value)

    return sqlite_datetime


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
