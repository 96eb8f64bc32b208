"""The rows of a range for a report, as one DuckDB relation.

`events_relation` is the only way the reports read the copy. For now every span is read
from the events table (rows.rows_for); the fold's Parquet segments replace that for the
spans they cover, with the same rows.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from .rows import rows_for


def connect() -> duckdb.DuckDBPyConnection:
    """A DuckDB connection for one report (in memory; two threads: the app shares its cores)."""
    con = duckdb.connect(":memory:")
    con.execute("SET threads = 2")
    return con


def events_relation(
    con: duckdb.DuckDBPyConnection, site_id: int, start: datetime, end: datetime
) -> duckdb.DuckDBPyRelation:
    """The copy's rows of the site's counted events in [start, end) (UTC, naive)."""
    table = rows_for(site_id, start, end)
    return con.from_arrow(table)
