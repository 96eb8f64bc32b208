"""Rollups of the store's segments (UTC days, and today's UTC hours): what an unfiltered
breakdown of a long range reads instead of the rows of the segments it covers whole
(reports.rolled_rows).

A segment's rollup is a small Parquet file beside the segment's, named with the segment's
token: it is made from the segment's rows (when the span is built or a day compacted, or
later from its file), so it holds exactly what those rows give, and it stops being used
the moment the segment's row is deleted (a late event, an erasure, a retention cut-off,
an identity link, a rebuild: store.invalidate); store.gc removes it with the segment's
file, since its name carries the same token.

Per dimension (every name of DIMENSIONS; `prop:<key>` is not rolled up) and shown value
(store_sql.column_value's, none as NONE), one `value` row holds the span's additive
figures: page views, conversions and revenue (exact: a 38-digit decimal of micros), the
HyperLogLog sketches of the distinct visitors and converters with that value
(sketches.LG_K), and `visits`: the visits with an event of that value that lie wholly in
the span (their first event at or after its start, their last before its end). A visit
of the span that began before it or ends after it (it crosses midnight, or the hour) may
have events of the same value in another span, or in a range's edge: each such (value,
visit) pair is listed instead, as a `pair` row (its visit_id), so that a reader counts it
once over all the parts of a range. A visit wholly inside a span has all its events, and
so all its events of that value, in that span: summing those counts never counts a visit
twice.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
from sqlalchemy import select
from sqlalchemy.orm import Session

from ...acquisition.dimensions import DIMENSIONS, NONE
from .. import sketches
from ..reports.store_sql import REVENUE, column_value, table_name
from . import files
from .models import StoreSegment

DAY = timedelta(days=1)
#: The dimensions a rollup holds.
ROLLED = tuple(DIMENSIONS)

SCHEMA = pa.schema(
    [
        ("dimension", pa.string()),
        ("value", pa.string()),
        ("visit_id", pa.int64()),  # set on a pair row only
        ("visits", pa.int64()),
        ("pageviews", pa.int64()),
        ("conversions", pa.int64()),
        ("revenue", pa.decimal128(38, 0)),
        ("visitors", pa.binary()),
        ("converters", pa.binary()),
    ]
)

# The day's rows summed per (dimension, value, visit), then per (dimension, value): `d<i>`
# is the i-th dimension's shown value (NULL in the other grouping sets). A pair crosses
# the day when its visit began before the day or ends after it.
_PAIRS = """
SELECT {which} AS dimension, coalesce({values}) AS value, visit_id,
       any_value(visitor) AS visitor,
       count(*) FILTER (WHERE kind = 'pageview') AS pageviews,
       count(*) FILTER (WHERE kind = 'success') AS conversions,
       {revenue} AS revenue,
       visit_id IS NOT NULL AND (min(visit_at) < ? OR max(visit_end) >= ?) AS crossing
FROM (
    SELECT {columns}, visit_id, visitor, kind, micros, visit_at,
           visit_at + to_microseconds(visit_duration_us) AS visit_end
    FROM {source}
)
GROUP BY GROUPING SETS ({sets})
"""
_VALUES = """
SELECT dimension, value,
       count(visit_id) FILTER (WHERE NOT crossing) AS visits,
       sum(pageviews)::BIGINT, sum(conversions)::BIGINT, sum(revenue)::HUGEINT,
       list(visitor) FILTER (WHERE visit_id IS NOT NULL) AS visitors,
       list(visitor) FILTER (WHERE visit_id IS NOT NULL AND conversions > 0) AS converters
FROM {pairs} GROUP BY dimension, value ORDER BY dimension, value
"""
_CROSSING = (
    "SELECT dimension, value, visit_id FROM {pairs} WHERE crossing"
    " ORDER BY dimension, value, visit_id"
)


def rollup_path(directory: Path, site_id: int, start: datetime, end: datetime, token: str) -> Path:
    """The rollup file of one day segment (its token last, as store.gc reads names)."""
    segment = files.segment_path(directory, site_id, start, end, token)
    return segment.with_name(segment.name.removesuffix(files.SUFFIX) + files.ROLLUP_SUFFIX)


def pair_sql(source: str, dimensions: list[str]) -> str:
    """A SELECT of the rows of `source` (a table or view of store.rows' SCHEMA) summed per
    (dimension, value, visit): `dimension` is its name, `value` the shown value, and
    `crossing` whether the visit crosses out of [?, ?) (two parameters)."""
    indexes = range(len(dimensions))
    which = " ".join(f"WHEN grouping(d{i}) = 0 THEN '{d}'" for i, d in enumerate(dimensions))
    shown = [f"coalesce({column_value(d)}, '{NONE}') AS d{i}" for i, d in enumerate(dimensions)]
    return _PAIRS.format(
        source=source,
        which=f"CASE {which} END",
        values=", ".join(f"d{i}" for i in indexes),
        revenue=REVENUE,
        columns=", ".join(shown),
        sets=", ".join(f"(d{i}, visit_id)" for i in indexes),
    )


def _sketch(ids: list[str] | None) -> bytes | None:
    """The stored sketch of some visitor ids (None: none)."""
    return sketches.of_ids(set(ids)) if ids else None


def rollup_of(
    con: duckdb.DuckDBPyConnection,
    relation: duckdb.DuckDBPyRelation,
    start: datetime,
    end: datetime,
) -> pa.Table:
    """The rollup of a day's rows (a relation of the SCHEMA of store.rows)."""
    source, pairs = table_name("day_rows"), table_name("day_pairs")
    con.register(source, relation)
    con.execute(f"CREATE TEMP TABLE {pairs} AS {pair_sql(source, list(ROLLED))}", [start, end])
    columns: dict[str, list] = {name: [] for name in SCHEMA.names}
    try:
        for dimension, value, visits, views, conversions, revenue, seen, paid in con.execute(
            _VALUES.format(pairs=pairs)
        ).fetchall():
            for name, item in (
                ("dimension", dimension),
                ("value", value),
                ("visit_id", None),
                ("visits", visits),
                ("pageviews", views),
                ("conversions", conversions),
                ("revenue", Decimal(int(revenue))),
                ("visitors", _sketch(seen)),
                ("converters", _sketch(paid)),
            ):
                columns[name].append(item)
        for dimension, value, visit_id in con.execute(_CROSSING.format(pairs=pairs)).fetchall():
            for name, item in (("dimension", dimension), ("value", value), ("visit_id", visit_id)):
                columns[name].append(item)
            for name in ("visits", "pageviews", "conversions", "revenue", "visitors", "converters"):
                columns[name].append(None)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {pairs}")
        con.unregister(source)
    return pa.table(columns, schema=SCHEMA)


def write_rollup(
    directory: Path, site_id: int, start: datetime, end: datetime, token: str, table: pa.Table
) -> None:
    """Make and write the rollup of a day segment's rows (an Arrow table of store.rows)."""
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET threads = 1")  # beside the reports: a build takes one core
        rollup = rollup_of(con, con.from_arrow(table), start, end)
    finally:
        con.close()
    files.write(rollup_path(directory, site_id, start, end, token), rollup)


def backfill(
    session: Session,
    directory: Path,
    site_ids: list[int] | None = None,
    seconds: float | None = None,
) -> int:
    """Write the missing rollups of valid segments (built before rollups existed, or whose
    rollup file is missing), newest first, from their files; with `seconds`, start
    none once that many have passed. How many were written."""
    if not (directory / files.STORE_ID_FILE).exists():
        return 0
    deadline = None if seconds is None else time.monotonic() + seconds
    store = files.store_id(directory)
    query = select(
        StoreSegment.token, StoreSegment.site_id, StoreSegment.span_start, StoreSegment.span_end
    ).where(StoreSegment.store == store, StoreSegment.events > 0)
    if site_ids is not None:
        query = query.where(StoreSegment.site_id.in_(site_ids))
    rows = session.execute(query.order_by(StoreSegment.span_start.desc())).all()
    session.rollback()
    written = 0
    for token, site_id, start, end in rows:
        if rollup_path(directory, site_id, start, end, token).exists():
            continue
        if deadline is not None and time.monotonic() >= deadline:
            break
        segment = files.segment_path(directory, site_id, start, end, token)
        try:
            table = files.read([segment])
        except FileNotFoundError:  # gone meanwhile (invalidated, collected): nothing to do
            continue
        write_rollup(directory, site_id, start, end, token, table)
        written += 1
    return written
