"""stats.json's figures of a range and of its previous period, counted with filters from one
reading of the rows of both (store_sql.Scope over store.read's relation).

One statement: the rows that pass the filters are read once, into the few values per row
the figures need (`figures`, materialized: each part below reads it), and each part sums
them with its own GROUP BY:

- visits: per period (`cur`: a row of the range, not of the previous period), summed per
  visit (visit_id, NULL exactly for the events without a visitor, rows.py), then per
  visitor: the events by kind, the revenue, the visitors and those who converted, and the
  visit figures of the visits counted (reports.visits), each visit's own figures (the
  same on each of its rows) read once;
- series: per chart bucket of the charted periods, summed per visitor first;
- pages, rules: of the range, per page (the top TOP_PAGES) and per success rule, summed per
  visitor first.

A part's visitors are then its groups with a visitor key, counted without a distinct
count over the rows. A row's chart bucket is found by arithmetic on its time
(bucket_cells), or, past bucket_cells.MAX_CELLS, by an ASOF join on the buckets' starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from ..ranges import Bucket
from ..rollups.models import MAX_PAGE
from .bucket_cells import MAX_CELLS, cells_of
from .model import PageRow, SeriesPoint, Totals
from .pages import TOP_PAGES
from .store_sql import REVENUE, VISITOR_KEY, Scope, table_name
from .visits import VisitSums

# The values per row (of the rows that passed the filters) that the parts read: `b` is the
# chart bucket of a row of a charted period (else NULL), `pg` and `rule` the page and the
# success rule of a row of the range (else NULL); `counted` whether the row's visit is one
# counted in its period (reports.visits: of a visitor, started in the period, with a page
# view sent by the browser).
_FIGURES = f"""
, figures AS MATERIALIZED (
    SELECT cur, vk, b, visit_id, kind, micros,
           CASE WHEN cur THEN substr(page, 1, {MAX_PAGE}) END AS pg,
           CASE WHEN cur AND kind = 'success' THEN "name" END AS rule,
           visit_id IS NOT NULL
               AND visit_at >= CASE WHEN cur THEN {{start}} ELSE {{previous_start}} END
               AND visit_browser_pageviews > 0 AS counted,
           visit_browser_pageviews, visit_events, visit_duration_us
    FROM (
        SELECT *, ts >= {{start}} AS cur,
               CASE WHEN has_visitor THEN {VISITOR_KEY} END AS vk,
               {{bucket}} AS b
        FROM rows {{join}}
    )
)
"""  # noqa: S608 - the names and values are the module's own
_SUCCESS = "count(*) FILTER (WHERE kind = 'success')"
# Each part's rows have its name and its own columns (UNION ALL BY NAME: NULL in the others).
_PARTS = {
    "visits": f"""
SELECT 'visits' AS part, cur,
       sum(events) AS events, sum(pageviews) AS pageviews, sum(clicks) AS clicks,
       sum(custom) AS custom, sum(conversions) AS conversions, sum(revenue) AS revenue,
       coalesce(sum(events) FILTER (WHERE vk IS NULL), 0) AS without_visitor,
       count(vk) AS visitors, count(vk) FILTER (WHERE conversions > 0) AS converters,
       sum(visits) AS visits, sum(visit_pageviews) AS visit_pageviews,
       sum(bounces) AS bounces, sum(visit_duration) AS visit_duration
FROM (
    SELECT cur, vk, sum(events) AS events, sum(pageviews) AS pageviews,
           sum(clicks) AS clicks, sum(custom) AS custom, sum(conversions) AS conversions,
           sum(revenue) AS revenue,
           count(*) FILTER (WHERE counted) AS visits,
           coalesce(sum(visit_pageviews) FILTER (WHERE counted), 0) AS visit_pageviews,
           count(*) FILTER (WHERE counted AND visit_events = 1) AS bounces,
           coalesce(sum(visit_duration) FILTER (WHERE counted), 0) AS visit_duration
    FROM (
        SELECT cur, visit_id,
               -- The events without a visitor (and only they) are summed under NULL.
               CASE WHEN visit_id IS NOT NULL THEN any_value(vk) END AS vk,
               count(*) AS events,
               count(*) FILTER (WHERE kind = 'pageview') AS pageviews,
               count(*) FILTER (WHERE kind = 'click') AS clicks,
               count(*) FILTER (WHERE kind = 'custom') AS custom,
               {_SUCCESS} AS conversions, {REVENUE} AS revenue,
               any_value(counted) AS counted,
               any_value(visit_browser_pageviews) AS visit_pageviews,
               any_value(visit_events) AS visit_events,
               any_value(visit_duration_us) AS visit_duration
        FROM figures GROUP BY cur, visit_id
    )
    GROUP BY cur, vk
)
GROUP BY cur
""",  # noqa: S608 - the names and values are the module's own
    "series": f"""
SELECT 'series' AS part, b, sum(events) AS events, count(vk) AS visitors,
       sum(conversions) AS conversions, sum(revenue) AS revenue
FROM (
    SELECT b, vk, count(*) AS events, {_SUCCESS} AS conversions, {REVENUE} AS revenue
    FROM figures WHERE b IS NOT NULL GROUP BY b, vk
)
GROUP BY b
""",  # noqa: S608
    "pages": f"""
(SELECT 'pages' AS part, pg AS value, sum(events) AS events, count(vk) AS visitors
FROM (SELECT pg, vk, count(*) AS events FROM figures WHERE cur GROUP BY pg, vk)
GROUP BY pg ORDER BY events DESC, pg LIMIT {TOP_PAGES})
""",  # noqa: S608
    "rules": f"""
SELECT 'rules' AS part, rule AS value, sum(events) AS conversions, sum(revenue) AS revenue,
       count(vk) AS visitors
FROM (
    SELECT rule, vk, count(*) AS events, {REVENUE} AS revenue
    FROM figures WHERE rule IS NOT NULL GROUP BY rule, vk
)
GROUP BY rule
""",  # noqa: S608
}
#: The parts by name.
PARTS = tuple(_PARTS)
# Every column the parts have, in the order read back, and no row: first in the union, so
# that it has them all whatever parts are asked for.
_COLUMNS = {
    "part": "VARCHAR",
    "cur": "BOOLEAN",
    "b": "INTEGER",
    "value": "VARCHAR",
    **dict.fromkeys(
        "events pageviews clicks custom conversions revenue without_visitor visitors"
        " converters visits visit_pageviews bounces visit_duration".split(),
        "HUGEINT",
    ),
}
_NO_ROW = (
    f"SELECT {', '.join(f'NULL::{kind} AS {name}' for name, kind in _COLUMNS.items())} WHERE FALSE"
)


@dataclass
class Found:
    """What one reading gives: each period's totals (True: the range, False: the previous
    period), the chart's buckets by index (without labels), the top pages in order and the
    rules that have conversions: (conversions, revenue, converters) by name."""

    totals: dict[bool, Totals] = field(default_factory=dict)
    series: dict[int, SeriesPoint] = field(default_factory=dict)
    pages: list[PageRow] = field(default_factory=list)
    rules: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def period(self, cur: bool) -> Totals:
        """A period's totals (all 0 without rows)."""
        return self.totals.get(cur, Totals())

    def add(self, row: tuple) -> None:
        """Take one row of the statement (its _COLUMNS)."""
        part, cur, b, value, *numbers = row
        events, pageviews, clicks, custom, conversions, revenue, without, seen, converted = (
            int(x or 0) for x in numbers[:9]
        )
        if part == "visits":
            totals = Totals(
                events, pageviews, clicks, custom, conversions, revenue, without, seen, converted
            )
            self.totals[cur] = VisitSums(*(int(x or 0) for x in numbers[9:])).apply(totals)
        elif part == "series":
            self.series[b] = SeriesPoint("", events, seen, conversions, revenue)
        elif part == "pages":
            self.pages.append(PageRow(value, events, seen))
        else:
            self.rules[value] = (conversions, revenue, seen)


def _timestamp(moment: datetime) -> str:
    """A naive UTC time as a SQL literal."""
    return f"TIMESTAMP '{moment.isoformat(sep=' ')}'"


def _bucket(scope: Scope, charted: list[Bucket], max_cells: int) -> tuple[str, str, list]:
    """The SQL of a row's bucket index in `charted` (the last bucket of equal starts, as
    raw_events.bucket_of; NULL before the first), a join it needs, and its parameters."""
    if not charted:
        return "NULL::INTEGER", "", []
    starts = [bucket.start_utc for bucket in charted]
    cells = cells_of(starts, max_cells)
    if cells is not None:
        # Integer division truncates: the times before the first start are left out first.
        cell = f"(epoch_us(ts) - {cells.origin_us}) // {cells.width_us}"
        last = len(cells.buckets) - 1
        first = _timestamp(charted[0].start_utc)
        sql = f"CASE WHEN ts >= {first} THEN (?::INTEGER[])[least({cell}, {last}) + 1] END"
        return sql, "", [cells.buckets]
    # Too many cells: each row is joined to the last bucket that starts at its time or
    # before (the table holds, of buckets with the same start, the last one).
    last_of = {start: index for index, start in enumerate(starts)}
    table = pa.table(
        {
            "i": pa.array(list(last_of.values()), pa.int32()),
            "start": pa.array(list(last_of), pa.timestamp("us")),
        }
    )
    name = table_name("buckets")
    scope.con.register(name, table)
    return "bk.i", f"ASOF LEFT JOIN {name} bk ON rows.ts >= bk.start", []


def read(
    scope: Scope,
    start: datetime,
    previous_start: datetime,
    charted: list[Bucket],
    parts: tuple[str, ...] = PARTS,
    max_cells: int = MAX_CELLS,
) -> Found:
    """The parts asked for over the scope's rows: those from `start` on are the range's,
    the earlier ones the previous period's (from `previous_start` on); `charted` are the
    chart's buckets, in order, of the periods charted (their indexes in Found.series)."""
    bucket, join, params = _bucket(scope, charted, max_cells)
    figures = _FIGURES.format(
        start=_timestamp(start),
        previous_start=_timestamp(previous_start),
        bucket=bucket,
        join=join,
    )
    union = " UNION ALL BY NAME ".join([_NO_ROW, *(_PARTS[name] for name in parts)])
    found = Found()
    for row in scope.query(f"SELECT {', '.join(_COLUMNS)} FROM ({union})", params, figures):  # noqa: S608
        found.add(row)
    found.pages.sort(key=lambda row: (-row.events, row.page_path))
    return found
