"""The rows of a range that pass the filters, as SQL over the copy (store.read), with any
dimension's value as a SQL expression: what breakdown.json and the filtered reports group.

Values are exactly raw_events.value_of's (the copy holds each event with its whole visit):
a visit dimension is the visit's first event's (`v_<name>`), a stored NULL is
NOT_RECORDED and a stored "" is none (SQL NULL, shown as NONE); `rule` is a success
event's name; `prop:<key>` is the property's value as property_text writes it.

Filters keep Filter.matches exactly: `==` and `!=` compare the value (none as NONE) in SQL;
`=~` (a case-insensitive substring, Python's casefold) is decided in Python over the
distinct values of its dimension, and the rows are then kept by the set of values that
pass. A property's values are read in Python too (orjson and property_text) from the
distinct `properties` texts that may hold the key, and joined back by that text.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import duckdb
import orjson
import pyarrow as pa

from ...acquisition.dimensions import CONTAINS, EQUALS, NONE, NOT_RECORDED, Filter, property_key
from ..rollups.accumulate import property_text
from .raw_events import EVENT_COLUMN_DIMENSIONS, VISIT_DIMENSIONS

# Names of the views and tables a connection is given (unique in the process, so that one
# connection may hold several ranges).
_names = itertools.count()

#: The exact sum of the success events' values (micros): DuckDB sums BIGINT as HUGEINT.
REVENUE = "coalesce(sum(coalesce(micros, 0)) FILTER (WHERE kind = 'success'), 0)"


def visitor_key(column: str = "visitor") -> str:
    """The SQL key of the visitor id in `column`: a 64-bit integer (DuckDB's hash of the
    id), since grouping and distinct counts on integers are several times cheaper than on
    the ids' text.

    Two visitors count as one only if their ids' hashes collide: among n visitors that
    happens with probability about n² / 2⁶⁵ (the birthday bound), 3·10⁻⁶ at ten million
    visitors in a range, far below any other cause of a wrong figure, so the counts are
    taken as exact."""
    return f"hash({column})"


VISITOR_KEY = visitor_key()
#: The distinct visitors (events without a visitor are none).
VISITORS = f"count(DISTINCT {VISITOR_KEY}) FILTER (WHERE has_visitor)"


def table_name(prefix: str) -> str:
    """A fresh name for a view or table."""
    return f"{prefix}_{next(_names)}"


def _stored(column: str) -> str:
    """A stored acquisition column as a value: NULL is NOT_RECORDED, "" none (NULL)."""
    return f"CASE WHEN \"{column}\" IS NULL THEN '{NOT_RECORDED}' ELSE nullif(\"{column}\", '') END"


def column_value(dimension: str) -> str:
    """The SQL value of a dimension that is not a property (NULL: the event has none)."""
    if dimension in VISIT_DIMENSIONS:
        return _stored("v_" + dimension)
    if dimension in EVENT_COLUMN_DIMENSIONS:
        return _stored(dimension)
    if dimension in ("page", "entry_page", "exit_page"):
        return f'"{dimension}"'
    if dimension == "rule":
        return "CASE WHEN kind = 'success' THEN \"name\" END"
    raise ValueError(f"not a dimension of these reports: {dimension!r}")


def compare_stored(f: Filter) -> str | None:
    """An `==` or `!=` filter on a dimension read from one stored column, as a condition on
    that column with one parameter (the filter's value); None for the other dimensions.

    The same test as comparing `shown` with the value, written on the column itself so that
    the scan of the copy's files applies it (a column compared with a constant is tested on
    the files' dictionaries and statistics, a CASE over the column is not)."""
    if f.dimension in VISIT_DIMENSIONS or f.dimension in EVENT_COLUMN_DIMENSIONS:
        prefix = "v_" if f.dimension in VISIT_DIMENSIONS else ""
        column, null_shown, empty_shown = f'"{prefix}{f.dimension}"', NOT_RECORDED, NONE
        if f.value == "":  # "" is stored, but shown as NONE: the generic test decides
            return None
    elif f.dimension in ("page", "entry_page", "exit_page"):
        column, null_shown, empty_shown = f'"{f.dimension}"', NONE, ""
    else:
        return None
    empty_too = empty_shown == NONE and f.value == NONE  # "" is shown as the value
    if f.op == EQUALS:
        alike = [f"{column} = ?"]
        alike += [f"{column} IS NULL"] if f.value == null_shown else []
        alike += [f"{column} = ''"] if empty_too else []
        return f"({' OR '.join(alike)})"
    unlike = f"{column} <> ?" + (f" AND {column} <> ''" if empty_too else "")
    if f.value == null_shown:  # NULL is shown as the value: it does not pass
        return f"({column} IS NOT NULL AND {unlike})"
    return f"({column} IS NULL OR ({unlike}))"


def prop_value(properties: str | None, key: str) -> str | None:
    """A property's value as text from the stored JSON object (None: no such key), as
    raw_events.RawEvent.prop reads it."""
    found = orjson.loads(properties) if properties else {}
    if key not in found:
        return None
    return property_text(found[key])


class Scope:
    """The rows of one relation that pass the filters, with the values of the dimensions
    asked for (and of the filters' dimensions); `query` runs a SELECT over them, named
    `rows`."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        relation: duckdb.DuckDBPyRelation,
        filters: Sequence[Filter] = (),
        dimensions: Iterable[str] = (),
    ) -> None:
        """Register the relation once and prepare the property values and the filters."""
        self.con = con
        self.view = table_name("range_rows")
        con.register(self.view, relation)  # the connection's own, unlike a view
        self._props: dict[str, str] = {}  # property key -> its column in `base`
        columns, joins = ["e.*"], []
        for dimension in [*dimensions, *(f.dimension for f in filters)]:
            key = property_key(dimension)
            if key is not None and key not in self._props:
                column = self._props[key] = f"prop_{len(self._props)}"
                table = self._property_table(key)
                columns.append(f"{table}.value AS {column}")
                joins.append(f" LEFT JOIN {table} ON {table}.properties = e.properties")
        # SQL from names made here only; every value compared is a parameter or a table.
        self._base = f"SELECT {', '.join(columns)} FROM {self.view} e{''.join(joins)}"  # noqa: S608
        self._where: list[str] = []
        self._params: list = []
        for f in filters:
            self._add_filter(f)

    def value(self, dimension: str) -> str:
        """The SQL value of a dimension over the rows (NULL: the event has none)."""
        key = property_key(dimension)
        if key is not None:
            return self._props[key]
        return column_value(dimension)

    def shown(self, dimension: str) -> str:
        """The value as a report's row shows it (none as NONE)."""
        return f"coalesce({self.value(dimension)}, '{NONE}')"

    def query(self, select: str, params: Sequence = (), views: str = "") -> list[tuple]:
        """The rows of `select`, which reads the filtered rows as `rows`; `views` are more
        common table expressions after it (", name AS (...)"), which may read `rows` too."""
        where = " AND ".join(self._where) or "TRUE"
        rows = f"SELECT * FROM base WHERE {where}"  # noqa: S608
        sql = f"WITH base AS ({self._base}), rows AS ({rows}){views} {select}"
        return self.con.execute(sql, [*self._params, *params]).fetchall()

    def _property_table(self, key: str) -> str:
        """A table of the distinct `properties` texts that hold the key, with its value."""
        # A text that names the key holds it as "key" unless it escapes a character (then
        # it holds a backslash): every other text cannot hold the key.
        texts = self.con.execute(
            f"SELECT DISTINCT properties FROM {self.view}"  # noqa: S608
            " WHERE contains(properties, ?) OR contains(properties, '\\')",
            ['"' + key + '"'],
        ).fetchall()
        found: dict[str, list] = {"properties": [], "value": []}
        for (text,) in texts:
            value = prop_value(text, key)
            if value is not None:
                found["properties"].append(text)
                found["value"].append(value)
        name = table_name("property_values")
        schema = pa.schema([("properties", pa.string()), ("value", pa.string())])
        self.con.register(name, pa.table(found, schema=schema))
        return name

    def _add_filter(self, f: Filter) -> None:
        """Keep only the rows whose value passes one filter."""
        if f.op != CONTAINS:
            compared = compare_stored(f)
            if compared is None:
                op = "=" if f.op == EQUALS else "<>"
                compared = f"{self.shown(f.dimension)} {op} ?"
            self._where.append(compared)
            self._params.append(f.value)
            return
        value = self.value(f.dimension)
        # The distinct values of the dimension, before any filter: Filter.matches decides.
        distinct = f"WITH base AS ({self._base}) SELECT DISTINCT {value} FROM base"  # noqa: S608
        found = self.con.execute(distinct)
        allowed = [v for (v,) in found.fetchall() if v is not None and f.matches(v)]
        if not allowed:
            self._where.append("FALSE")
            return
        name = table_name("allowed")
        self.con.register(name, pa.table({"v": pa.array(allowed, pa.string())}))
        self._where.append(f"{value} IN (SELECT v FROM {name})")  # noqa: S608
