"""Unfiltered breakdowns of long ranges from the rollups of the store's segments
(store.daily).

As the dashboard's visitors do (totals.exact_limit), a range whose rolled segments already
hold more than ANALYTICS_EXACT_EVENTS events is not read row by row: the valid segments
(UTC days, today's UTC hours) that lie wholly in the range and have a rollup are read from
their rollups (small files, merged once per process: a rollup never changes), and the
rest of the range (the edges a site's time zone cuts out of UTC days, the hours not built
yet, any span without a valid segment or rollup) from its rows, exactly as dimension_rows
reads them; both are summed into the same figures.

- Page views, conversions, revenue and the number of values are exact (sums).
- Visits are exact: a rollup counts the visits wholly inside its span and lists the
  (value, visit) pairs of the visits that cross its start or end; the edges' pairs are
  listed too, and the listed pairs are counted once (a visit wholly inside a span has no
  event elsewhere).
- Visitors and converters are estimated: the HyperLogLog sketches of the spans merged with
  the edges' visitor ids (sketches.LG_K, error within about 1%); a row's visitors are at
  most its visits and its converters at most its visitors. `visitors_exact` is false.

Rows are ordered by (estimated) visitors, most first, then by value, as dimension_rows'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from datasketches import hll_sketch, hll_union
from flask import current_app

from ...models import Site
from .. import sketches
from ..ranges import DateRange
from ..settled import AppCache
from ..store import files
from ..store.build import Segment
from ..store.daily import DAY, ROLLED, pair_sql, rollup_path
from ..store.read import connect, store_directory, uncovered, usable_segments
from ..store.rows import SCHEMA, rows_for
from .model import DimensionBreakdown, DimensionRow
from .store_sql import table_name

# The rolled days of a range summed per (dimension, value), and their listed pairs.
_DAY_SUMS = """
SELECT dimension, value, sum(visits)::BIGINT AS visits, sum(pageviews)::BIGINT AS pageviews,
       sum(conversions)::BIGINT AS conversions, sum(revenue)::HUGEINT AS revenue,
       list(visitors) FILTER (WHERE visitors IS NOT NULL) AS visitors,
       list(converters) FILTER (WHERE converters IS NOT NULL) AS converters
FROM {days} WHERE visit_id IS NULL GROUP BY dimension, value
"""
_DAY_PAIRS = "SELECT DISTINCT dimension, value, visit_id FROM {days} WHERE visit_id IS NOT NULL"
# Per (dimension, value): the exact figures of the days and the edges, the listed pairs of
# both counted once, and the edges' visitors and converters.
_FIGURES = """
WITH summed AS (
    SELECT dimension, value, sum(visits) AS visits, sum(pageviews) AS pageviews,
           sum(conversions) AS conversions, sum(revenue) AS revenue
    FROM (
        SELECT dimension, value, visits, pageviews, conversions, revenue::HUGEINT AS revenue
        FROM {sums}
        UNION ALL
        SELECT dimension, value, 0, pageviews, conversions, revenue::HUGEINT FROM {edges}
    )
    GROUP BY dimension, value
),
listed AS (
    SELECT dimension, value, count(*) AS visits
    FROM (
        SELECT dimension, value, visit_id FROM {pairs}
        UNION
        SELECT dimension, value, visit_id FROM {edges} WHERE visit_id IS NOT NULL
    )
    GROUP BY dimension, value
),
loose AS (
    SELECT dimension, value,
           list(DISTINCT visitor) FILTER (WHERE visit_id IS NOT NULL) AS visitors,
           list(DISTINCT visitor) FILTER (WHERE visit_id IS NOT NULL AND conversions > 0)
               AS converters
    FROM {edges} GROUP BY dimension, value
)
SELECT s.dimension, s.value, s.visits + coalesce(l.visits, 0), s.pageviews, s.conversions,
       s.revenue, o.visitors, o.converters
FROM summed s
LEFT JOIN listed l ON l.dimension = s.dimension AND l.value = s.value
LEFT JOIN loose o ON o.dimension = s.dimension AND o.value = s.value
"""
# Merged segments per process: a rollup never changes (a new build has a new token), so
# the key of a range's segments (their tokens) finds only what they still hold.
_merged = AppCache("datalook_rolled_days", 128)


@dataclass(frozen=True)
class _Days:
    """One dimension over some rolled segments: the figures per value (Arrow), the pairs
    of visits across their edges, and the merged sketches of each value."""

    sums: pa.Table
    pairs: pa.Table
    visitors: dict[str, hll_sketch | None]
    converters: dict[str, hll_sketch | None]


def exact_limit() -> int:
    """The most events of a range read row by row (ANALYTICS_EXACT_EVENTS)."""
    return int(current_app.config["ANALYTICS_EXACT_EVENTS"])


def _rolled(
    directory, site_id: int, start: datetime, end: datetime, chosen: list[Segment]
) -> list[Segment]:
    """The chosen segments wholly in the range with a rollup to read."""
    return [
        s
        for s in chosen
        if start <= s.span_start
        and s.span_end <= end
        and (
            not s.events
            or rollup_path(directory, site_id, s.span_start, s.span_end, s.token).exists()
        )
    ]


def _edge_rows(
    con: duckdb.DuckDBPyConnection,
    directory,
    site_id: int,
    start: datetime,
    end: datetime,
    chosen: list[Segment],
    rolled: list[Segment],
) -> tuple[str, list]:
    """SQL (a subquery, and its parameters) of the rows of [start, end) outside the rolled
    segments: the other chosen segments' rows in the range, and the rows of the spans no
    chosen segment covers (as store.read reads them). SQL rather than relations: binding
    relations cost more than the whole query here."""
    skipped = {s.token for s in rolled}
    paths = [
        str(files.segment_path(directory, site_id, s.span_start, s.span_end, s.token))
        for s in chosen
        if s.events and s.token not in skipped
    ]
    parts = [rows_for(site_id, a, b) for a, b in uncovered(start, end, chosen)]
    fresh = table_name("fresh_rows")
    con.register(fresh, pa.concat_tables(parts) if parts else SCHEMA.empty_table())
    if not paths:
        return f"(SELECT * FROM {fresh})", []  # noqa: S608
    stored = "SELECT * FROM read_parquet(?) WHERE ts >= ? AND ts < ?"
    return f"({stored} UNION ALL BY NAME SELECT * FROM {fresh})", [paths, start, end]  # noqa: S608


def rolled_tables(
    site: Site, rng: DateRange, dimensions: Sequence[str], limit: int, offset: int = 0
) -> dict[str, DimensionBreakdown] | None:
    """Rows `offset` to `offset + limit` of each dimension (all of ROLLED) over the range,
    unfiltered, from the rollups; None when the range's rolled segments hold at most
    exact_limit() events (it is then read row by row)."""
    directory = store_directory()
    start, end = rng.start_utc, rng.end_utc
    chosen = usable_segments(directory, site.id, start, end)
    rolled = _rolled(directory, site.id, start, end, chosen)
    if sum(s.events for s in rolled) <= exact_limit():
        return None
    wanted = list(dict.fromkeys(dimensions))
    if any(d not in ROLLED for d in wanted):
        raise ValueError(f"not rolled up: {wanted!r}")
    # Days and hours merged apart: a new hour each hour leaves the days' merge cached.
    days = [s for s in rolled if s.span_end - s.span_start == DAY]
    hours = [s for s in rolled if s.span_end - s.span_start != DAY]
    parts = [_days(directory, site.id, group, wanted) for group in (days, hours) if group]
    con = connect()
    sums, pairs = table_name("day_sums"), table_name("day_pairs")
    edges = table_name("edges")
    try:
        con.register(sums, pa.concat_tables([part[d].sums for part in parts for d in wanted]))
        con.register(pairs, pa.concat_tables([part[d].pairs for part in parts for d in wanted]))
        rows, params = _edge_rows(con, directory, site.id, start, end, chosen, rolled)
        sql = f"CREATE TEMP TABLE {edges} AS {pair_sql(rows, wanted)}"
        con.execute(sql, [start, end, *params])
        figures = con.execute(_FIGURES.format(sums=sums, pairs=pairs, edges=edges)).fetchall()
    finally:
        con.close()  # its TEMP tables and registrations go with it
    found: dict[str, list[DimensionRow]] = {d: [] for d in wanted}
    for dimension, value, visits, pageviews, conversions, revenue, seen, paid in figures:
        merged = [part[dimension] for part in parts]
        visitors = min(_estimate([m.visitors.get(value) for m in merged], seen), int(visits))
        if visits and not visitors:
            visitors = 1  # a visit has a visitor
        converters = min(_estimate([m.converters.get(value) for m in merged], paid), visitors)
        row = (value, visitors, int(visits), int(pageviews), int(conversions), converters)
        found[dimension].append(DimensionRow(*row, int(revenue)))
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


def _days(directory, site_id: int, rolled: list[Segment], wanted: list[str]) -> dict[str, _Days]:
    """Each wanted dimension over some rolled segments: from this process's cache, or read
    from their rollups in one query (and cached)."""
    tokens = tuple(s.token for s in rolled)
    keys = {d: (str(directory), site_id, tokens, d) for d in wanted}
    found = {d: _merged.get(keys[d]) for d in wanted}
    missing = [d for d in wanted if found[d] is None]
    if not missing:
        return found
    paths = [
        str(rollup_path(directory, site_id, s.span_start, s.span_end, s.token))
        for s in rolled
        if s.events
    ]
    con = connect()
    days = table_name("days")
    try:
        names = ", ".join(f"'{d}'" for d in missing)  # names of DIMENSIONS only
        con.execute(
            f"CREATE TEMP TABLE {days} AS SELECT * FROM read_parquet(?)"  # noqa: S608
            f" WHERE dimension IN ({names})",
            [paths],
        )
        sums = con.sql(_DAY_SUMS.format(days=days)).to_arrow_table()
        pairs = con.sql(_DAY_PAIRS.format(days=days)).to_arrow_table()
    finally:
        con.close()
    for dimension in missing:
        mine = sums.filter(pc.equal(sums["dimension"], dimension))
        values = mine["value"].to_pylist()
        merged = _Days(
            sums=mine.drop_columns(["visitors", "converters"]),
            pairs=pairs.filter(pc.equal(pairs["dimension"], dimension)),
            visitors=dict(zip(values, map(_union, mine["visitors"].to_pylist()), strict=True)),
            converters=dict(zip(values, map(_union, mine["converters"].to_pylist()), strict=True)),
        )
        _merged.put(keys[dimension], merged)
        found[dimension] = merged
    return found


def _union(stored: list[bytes] | None) -> hll_sketch | None:
    """One sketch of the days' sketches of a value (None: none)."""
    return sketches.union_of(stored or [])


def _estimate(bases: list[hll_sketch | None], loose: list[str] | None) -> int:
    """Estimated distinct visitors of merged sketches and the edges' ids."""
    found = [base for base in bases if base is not None]
    if not loose and len(found) <= 1:
        return round(found[0].get_estimate()) if found else 0
    union = hll_union(sketches.LG_K)
    for base in found:
        union.update(base)
    if loose:
        extra = sketches.new()
        for visitor in loose:
            extra.update(visitor)
        union.update(extra)
    return round(union.get_estimate())
