"""stats.json's figures of a range and of its previous period, counted with filters from one
reading of the rows of both (store_sql.Scope over store.read's relation): one statement,
whose GROUPING SETS sum every part at once.

Each row is of the range (`cur`) or of the previous period (before the range's start).
The parts, each a grouping set:

- visits: per period and visit (visit_id, NULL exactly for the events without a visitor,
  rows.py), the events by kind and the revenue, and the visit's own figures (the same on
  each of its rows) read once, for the visits counted (reports.visits);
- visitors: per period and visitor key, the visitors and those who converted;
- series: per chart bucket (of the charted periods) and visitor key;
- pages, rules: of the range, per page (top TOP_PAGES) and per success rule, and visitor.

A part's visitors are then its groups with a visitor key: no distinct count runs over the
rows. A part's keys are NULL in the rows it does not count (the previous period's rows for
pages, rules and an uncharted period; other events for rules), which thus fall into one
group instead of one per visitor.

A row's chart bucket is found by arithmetic on its time (bucket_cells), or, past
bucket_cells.MAX_CELLS, by an ASOF join on the buckets' starts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

import pyarrow as pa

from ..ranges import Bucket
from ..rollups.models import MAX_PAGE
from .bucket_cells import cells_of
from .model import PageRow, SeriesPoint, Totals
from .pages import TOP_PAGES
from .store_sql import REVENUE, VISITOR_KEY, Scope, table_name
from .visits import VisitSums

#: The parts (grouping sets) by name, each with its keys.
PARTS = {
    "visits": ("cur", "visit_id"),
    "visitors": ("cur", "vk"),
    "series": ("b", "b_vk"),
    "pages": ("pg", "pg_vk"),
    "rules": ("rule", "rule_vk"),
}
#: What each group of the parts is read by, beside its part: a value of a part's keys, or
#: NULL in the groups of the parts without that key.
_READ = ("cur", "visit_id", "b", "pg", "rule")

# The values per row of the rows that passed the filters. `b` is the chart bucket of a row
# of a charted period (else NULL), `pg` and `rule` the page and the success rule of a row
# of the range; each part's visitor key is NULL where its value is.
_VALUES = f"""
SELECT *,
       CASE WHEN b IS NOT NULL THEN vk END AS b_vk,
       CASE WHEN cur THEN vk END AS pg_vk,
       CASE WHEN rule IS NOT NULL THEN vk END AS rule_vk
FROM (
    SELECT *,
           CASE WHEN cur THEN substr(page, 1, {MAX_PAGE}) END AS pg,
           CASE WHEN cur AND kind = 'success' THEN "name" END AS rule
    FROM (
        SELECT ts >= {{start}} AS cur,
               CASE WHEN has_visitor THEN {VISITOR_KEY} END AS vk,
               {{bucket}} AS b,
               visit_id, kind, "name", page, micros, visit_at, visit_browser_pageviews,
               visit_events, visit_duration_us
        FROM rows {{join}}
    )
)
"""  # noqa: S608 - the names and values are the module's own
# Summed per group of each part, then per part and key.
_FIGURES = f"""
SELECT part, cur, b, pg, rule,
       sum(events), sum(pageviews), sum(clicks), sum(custom), sum(conversions),
       sum(revenue),
       coalesce(sum(events) FILTER (WHERE visit_id IS NULL), 0),
       count(visitor),
       count(visitor) FILTER (WHERE conversions > 0),
       count(*) FILTER (WHERE counted),
       coalesce(sum(visit_pageviews) FILTER (WHERE counted), 0),
       count(*) FILTER (WHERE counted AND visit_events = 1),
       coalesce(sum(visit_duration) FILTER (WHERE counted), 0)
FROM (
    SELECT GROUPING({{keys}}) AS part, {{read}}, coalesce({{visitor_keys}}) AS visitor,
           count(*) AS events,
           count(*) FILTER (WHERE kind = 'pageview') AS pageviews,
           count(*) FILTER (WHERE kind = 'click') AS clicks,
           count(*) FILTER (WHERE kind = 'custom') AS custom,
           count(*) FILTER (WHERE kind = 'success') AS conversions,
           {REVENUE} AS revenue,
           {{counted}} AS counted,
           any_value(visit_browser_pageviews) AS visit_pageviews,
           any_value(visit_events) AS visit_events,
           any_value(visit_duration_us) AS visit_duration
    FROM ({{values}}) GROUP BY GROUPING SETS ({{sets}})
)
-- A part's groups of rows it does not count (its value NULL) are left out.
WHERE part IN ({{whole}}) OR b IS NOT NULL OR pg IS NOT NULL OR rule IS NOT NULL
GROUP BY part, cur, b, pg, rule
QUALIFY part <> {{pages}}
    OR row_number() OVER (PARTITION BY part ORDER BY sum(events) DESC, pg) <= {TOP_PAGES}
"""  # noqa: S608 - the names and values are the module's own


# The visits counted (reports.visits): of a visitor, started in the group's period, with
# a page view sent by the browser.
_COUNTED = """visit_id IS NOT NULL
    AND any_value(visit_at) >= CASE WHEN cur THEN {start} ELSE {previous_start} END
    AND any_value(visit_browser_pageviews) > 0"""


def part_id(name: str, keys: tuple[str, ...]) -> int:
    """GROUPING(keys) of a part's groups: a bit per key, the first the highest, set where
    the key is not one of the part's."""
    return sum(1 << (len(keys) - 1 - i) for i, key in enumerate(keys) if key not in PARTS[name])


def _statement(
    values: str, parts: tuple[str, ...], start: datetime, previous_start: datetime
) -> tuple[str, dict[int, str]]:
    """_FIGURES over `values` for the parts asked for (their grouping sets; the keys and
    figures of the others are NULL), and the parts' names by GROUPING id."""
    keys = tuple(dict.fromkeys(key for name in parts for key in PARTS[name]))
    ids = {name: part_id(name, keys) for name in PARTS}
    counted = _COUNTED.format(start=_timestamp(start), previous_start=_timestamp(previous_start))
    sql = _FIGURES.format(
        values=values,
        keys=", ".join(keys),
        read=", ".join(name if name in keys else f"NULL AS {name}" for name in _READ),
        visitor_keys=", ".join(PARTS[name][1] for name in parts if name != "visits") or "NULL",
        counted=counted if "visits" in parts else "FALSE",
        sets=", ".join(f"({', '.join(PARTS[name])})" for name in parts),
        whole=", ".join(str(ids[name]) for name in ("visits", "visitors")),
        pages=ids["pages"],
    )
    return sql, {ids[name]: name for name in parts}


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


def _timestamp(moment: datetime) -> str:
    """A naive UTC time as a SQL literal."""
    return f"TIMESTAMP '{moment.isoformat(sep=' ')}'"


def _bucket(scope: Scope, charted: list[Bucket]) -> tuple[str, str, list]:
    """The SQL of a row's bucket index in `charted` (the last bucket of equal starts, as
    raw_events.bucket_of; NULL before the first), a join it needs, and its parameters."""
    if not charted:
        return "NULL::INTEGER", "", []
    starts = [bucket.start_utc for bucket in charted]
    cells = cells_of(starts)
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
    parts: tuple[str, ...] = tuple(PARTS),
) -> Found:
    """The parts asked for over the scope's rows: those from `start` on are the range's,
    the earlier ones the previous period's (from `previous_start` on); `charted` are the
    chart's buckets, in order, of the periods charted (their indexes in Found.series)."""
    bucket, join, bucket_params = _bucket(scope, charted)
    values = _VALUES.format(bucket=bucket, join=join, start=_timestamp(start))
    sql, names = _statement(values, parts, start, previous_start)
    found = Found()
    visitors: dict[bool, tuple[int, int]] = {}
    for part, cur, b, pg, rule, *numbers in scope.query(sql, bucket_params):
        events, pageviews, clicks, custom, conversions, revenue, without, seen, converted = (
            int(x or 0) for x in numbers[:9]
        )
        name = names[part]
        if name == "visits":
            totals = Totals(events, pageviews, clicks, custom, conversions, revenue, without)
            found.totals[cur] = VisitSums(*(int(x) for x in numbers[9:])).apply(totals)
        elif name == "visitors":
            visitors[cur] = (seen, converted)
        elif name == "series":
            found.series[b] = SeriesPoint("", events, seen, conversions, revenue)
        elif name == "pages":
            found.pages.append(PageRow(pg, events, seen))
        else:
            found.rules[rule] = (conversions, revenue, seen)
    for cur, (seen, converted) in visitors.items():
        totals = found.totals.get(cur, Totals())
        found.totals[cur] = replace(totals, visitors=seen, converters=converted)
    found.pages.sort(key=lambda row: (-row.events, row.page_path))
    return found
