"""Filters over the rows of the columnar copy, with raw_events' meaning exactly.

Each dimension is one column of a copy row (analytics.store.rows): a visit dimension its
`v_` column, an event's own dimension its column, `rule` the name of a success, `prop:<key>`
the event's properties. A filter's values among the rows a report keeps are few, so
Filter.matches (the one definition of a match) runs in Python on each distinct value, and
the values that pass become an SQL condition: the rows kept are those raw_events keeps.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import orjson

from ...acquisition.dimensions import Filter, property_key
from ..rollups.accumulate import property_text
from .raw_events import EVENT_COLUMN_DIMENSIONS, VISIT_DIMENSIONS, stored_value

# Dimensions whose column holds the value as it is (no NULL / "" sentinels).
_PLAIN = frozenset({"page", "entry_page", "exit_page"})
_PROPERTIES = "properties"


def column_of(dimension: str) -> str:
    """The SQL expression over a copy row that holds the dimension's stored value."""
    if dimension in VISIT_DIMENSIONS:
        return f'"v_{dimension}"'
    if dimension in EVENT_COLUMN_DIMENSIONS or dimension in _PLAIN:
        return f'"{dimension}"'
    if dimension == "rule":
        return "CASE WHEN kind = 'success' THEN name END"
    if property_key(dimension) is None:
        raise ValueError(f"not a dimension of these reports: {dimension!r}")
    return _PROPERTIES


def columns(filters: Sequence[Filter]) -> list[str]:
    """The copy's columns that the filters read (to read no other)."""
    found: dict[str, None] = {}
    for one in filters:
        if one.dimension == "rule":
            found |= {"kind": None, "name": None}
        else:
            found[column_of(one.dimension).strip('"')] = None
    return list(found)


def value_of(dimension: str, stored: str | None) -> str | None:
    """The dimension's value (raw_events.value_of) from the stored value of its column."""
    if dimension in VISIT_DIMENSIONS or dimension in EVENT_COLUMN_DIMENSIONS:
        return stored_value(stored)
    key = property_key(dimension)
    if key is None:
        return stored
    found = orjson.loads(stored) if stored else {}
    return property_text(found[key]) if key in found else None


def condition(
    con: duckdb.DuckDBPyConnection, table: str, filters: Sequence[Filter]
) -> tuple[str, list]:
    """An SQL condition (and its parameters) over the rows of `table` (a name the caller
    controls) that keeps the rows passing every filter."""
    parts, parameters = ["TRUE"], []
    for one in filters:
        expression = column_of(one.dimension)
        stored = con.execute(f"SELECT DISTINCT {expression} FROM {table}").fetchall()  # noqa: S608
        passing = [v for (v,) in stored if one.matches(value_of(one.dimension, v))]
        keeps_null = None in passing
        parts.append(f"(list_contains(?, {expression}) OR ({expression} IS NULL AND ?))")
        parameters += [[v for v in passing if v is not None], keeps_null]
    return " AND ".join(parts), parameters
