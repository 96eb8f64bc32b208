"""Unfiltered breakdowns of long ranges from the store's per-day rollups (store.daily).

As the dashboard's visitors do (totals.exact_limit), a range whose whole UTC days already
hold more than ANALYTICS_EXACT_EVENTS events is not read row by row: its whole UTC days
that a valid day segment with a rollup covers are read from the rollups (one read of small
files), and the rest of the range (the edges a site's time zone cuts out of UTC days,
today's hours, any day without a valid segment or rollup) from its rows, exactly as
dimension_rows reads them; both are summed into the same figures.

- Page views, conversions, revenue and the number of values are exact (sums).
- Visits are exact: a rollup counts the visits wholly inside its day and lists the (value,
  visit) pairs of the visits that cross its midnight; the edges' pairs are listed too, and
  the listed pairs are counted once (a visit wholly inside a day has no event elsewhere).
- Visitors and converters are estimated: the HyperLogLog sketches of the days merged with
  the edges' visitor ids (sketches.LG_K, error within about 1%); a row's visitors are at
  most its visits and its converters at most its visitors. `visitors_exact` is false.

Rows are ordered by (estimated) visitors, most first, then by value, as dimension_rows'.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pyarrow as pa
from flask import current_app

from ...models import Site
from .. import sketches
from ..ranges import DateRange
from ..store import files
from ..store.build import Segment
from ..store.daily import ROLLED, is_day, pair_sql, rollup_path
from ..store.read import connect, store_directory, uncovered, usable_segments
from ..store.rows import SCHEMA, rows_for
from .model import DimensionBreakdown, DimensionRow
from .store_sql import table_name

# Per (dimension, value): the exact figures of the days and the edges, with the visits
# listed as pairs counted once.
_FIGURES = """
WITH summed AS (
    SELECT dimension, value, sum(visits) AS visits, sum(pageviews) AS pageviews,
           sum(conversions) AS conversions, sum(revenue) AS revenue
    FROM (
        SELECT dimension, value, visits, pageviews, conversions, revenue::HUGEINT AS revenue
        FROM {days} WHERE visit_id IS NULL
        UNION ALL
        SELECT dimension, value, 0, pageviews, conversions, revenue::HUGEINT FROM {edges}
    )
    GROUP BY dimension, value
),
listed AS (
    SELECT dimension, value, count(*) AS visits
    FROM (
        SELECT dimension, value, visit_id FROM {days} WHERE visit_id IS NOT NULL
        UNION
        SELECT dimension, value, visit_id FROM {edges} WHERE visit_id IS NOT NULL
    )
    GROUP BY dimension, value
)
SELECT s.dimension, s.value, s.visits + coalesce(l.visits, 0), s.pageviews, s.conversions,
       s.revenue
FROM summed s LEFT JOIN listed l ON l.dimension = s.dimension AND l.value = s.value
"""
# Per (dimension, value): the days' sketches of visitors and converters.
_SKETCHES = """
SELECT dimension, value, list(visitors) FILTER (WHERE visitors IS NOT NULL),
       list(converters) FILTER (WHERE converters IS NOT NULL)
FROM {days} WHERE visit_id IS NULL GROUP BY dimension, value
"""
# Per (dimension, value): the edges' visitors and converters.
_LOOSE = """
SELECT dimension, value, list(DISTINCT visitor) FILTER (WHERE visit_id IS NOT NULL),
       list(DISTINCT visitor) FILTER (WHERE visit_id IS NOT NULL AND conversions > 0)
FROM {edges} GROUP BY dimension, value
"""


def exact_limit() -> int:
    """The most events of a range read row by row (ANALYTICS_EXACT_EVENTS)."""
    return int(current_app.config["ANALYTICS_EXACT_EVENTS"])


def _rolled_days(
    directory, site_id: int, start: datetime, end: datetime, chosen: list[Segment]
) -> list[Segment]:
    """The chosen segments that are whole UTC days of the range with a rollup to read."""
    return [
        s
        for s in chosen
        if is_day(s.span_start, s.span_end)
        and start <= s.span_start
        and s.span_end <= end
        and (
            not s.events
            or rollup_path(directory, site_id, s.span_start, s.span_end, s.token).exists()
        )
    ]


def _edge_relation(
    con: duckdb.DuckDBPyConnection,
    directory,
    site_id: int,
    start: datetime,
    end: datetime,
    chosen: list[Segment],
    rolled: list[Segment],
) -> duckdb.DuckDBPyRelation:
    """The rows of [start, end) outside the rolled days: the other chosen segments' rows in
    the range, and the rows of the spans no chosen segment covers (as store.read reads)."""
    skipped = {s.token for s in rolled}
    paths = [
        str(files.segment_path(directory, site_id, s.span_start, s.span_end, s.token))
        for s in chosen
        if s.events and s.token not in skipped
    ]
    parts = [rows_for(site_id, a, b) for a, b in uncovered(start, end, chosen)]
    fresh = con.from_arrow(pa.concat_tables(parts) if parts else SCHEMA.empty_table())
    if not paths:
        return fresh
    ts = duckdb.ColumnExpression("ts")
    stored = con.read_parquet(paths).filter(
        (ts >= duckdb.ConstantExpression(start)) & (ts < duckdb.ConstantExpression(end))
    )
    return stored.union(fresh) if parts else stored


def _estimate(stored: list[bytes] | None, loose: list[str] | None) -> int:
    """Estimated distinct visitors of the days' sketches and the edges' ids."""
    return sketches.estimate(stored or [], loose or ())


def rolled_tables(
    site: Site, rng: DateRange, dimensions: Sequence[str], limit: int, offset: int = 0
) -> dict[str, DimensionBreakdown] | None:
    """Rows `offset` to `offset + limit` of each dimension (all of ROLLED) over the range,
    unfiltered, from the rollups; None when the range's rolled days hold at most
    exact_limit() events (it is then read row by row)."""
    directory = store_directory()
    start, end = rng.start_utc, rng.end_utc
    chosen = usable_segments(directory, site.id, start, end)
    rolled = _rolled_days(directory, site.id, start, end, chosen)
    if sum(s.events for s in rolled) <= exact_limit():
        return None
    wanted = list(dict.fromkeys(dimensions))
    if any(d not in ROLLED for d in wanted):
        raise ValueError(f"not rolled up: {wanted!r}")
    rollups = [
        str(rollup_path(directory, site.id, s.span_start, s.span_end, s.token))
        for s in rolled
        if s.events
    ]
    con = connect()
    days, edges, rows = table_name("days"), table_name("edges"), table_name("edge_rows")
    try:
        names = ", ".join(f"'{d}'" for d in wanted)  # names of DIMENSIONS only
        con.execute(
            f"CREATE TEMP TABLE {days} AS SELECT * FROM read_parquet(?)"  # noqa: S608
            f" WHERE dimension IN ({names})",
            [rollups],
        )
        con.register(rows, _edge_relation(con, directory, site.id, start, end, chosen, rolled))
        con.execute(f"CREATE TEMP TABLE {edges} AS {pair_sql(rows, wanted)}", [start, end])
        figures = con.execute(_FIGURES.format(days=days, edges=edges)).fetchall()
        stored = {
            (d, v): (seen, paid)
            for d, v, seen, paid in con.execute(_SKETCHES.format(days=days)).fetchall()
        }
        loose = {
            (d, v): (seen, paid)
            for d, v, seen, paid in con.execute(_LOOSE.format(edges=edges)).fetchall()
        }
    finally:
        con.close()  # its TEMP tables and registrations go with it
    found: dict[str, list[DimensionRow]] = {d: [] for d in wanted}
    for dimension, value, visits, pageviews, conversions, revenue in figures:
        seen, paid = stored.get((dimension, value), (None, None))
        loose_seen, loose_paid = loose.get((dimension, value), (None, None))
        visitors = min(_estimate(seen, loose_seen), int(visits))
        if visits and not visitors:
            visitors = 1  # a visit has a visitor
        converters = min(_estimate(paid, loose_paid), visitors)
        found[dimension].append(
            DimensionRow(
                value,
                visitors,
                int(visits),
                int(pageviews),
                int(conversions),
                converters,
                int(revenue),
            )
        )
    out = {}
    for dimension, rows_of in found.items():
        rows_of.sort(key=lambda row: (-row.visitors, row.value))
        out[dimension] = DimensionBreakdown(
            range=rng,
            dimension=dimension,
            filters=(),
            rows=rows_of[offset : offset + limit],
            total_rows=len(rows_of),
            limit=limit,
            offset=offset,
            visitors_exact=False,
        )
    return out
