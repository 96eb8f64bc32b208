"""The reports of a range with filters: stats.json's figures and the property breakdown,
counted exactly from the range's rows in the copy (store.read) that pass every filter
(store_sql).

Visit figures count the visits (reports.visits) that started in the range and hold an
event of the range that passes every filter, each as a whole (all of its events: the copy
holds each row's visit figures).

The same figures as the unfiltered reports read from the rollups, over fewer events: totals
and the previous period, one row per success rule, the chart's buckets and the top pages.
Visitors are always exact here (`visitors_exact` is true).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pyarrow as pa
from sqlalchemy import select

from ...acquisition.dimensions import PROPERTY_PREFIX, Filter
from ...extensions import db
from ...models import Site, SuccessRule
from ..ranges import Bucket, DateRange
from ..rollups.models import MAX_KEY, MAX_PAGE
from ..store.read import connect, events_relation
from .breakdown import TOP_VALUES
from .model import BreakdownRow, PageRow, RuleRow, SeriesPoint, Stats, Totals
from .pages import TOP_PAGES
from .store_sql import REVENUE, VISITOR_KEY, VISITORS, Scope, table_name
from .totals import rule_displays
from .visits import VisitSums

# Summed per visit first (visit_id is NULL exactly for the events without a visitor,
# rows.py): the visitors are then counted over far fewer rows, and each visit's own
# figures (the same on each of its rows) are read once.
_TOTALS = f"""
SELECT sum(events), sum(pageviews), sum(clicks), sum(custom), sum(conversions),
       coalesce(sum(revenue), 0),
       coalesce(sum(events) FILTER (WHERE visit_id IS NULL), 0),
       count(DISTINCT visitor) FILTER (WHERE visit_id IS NOT NULL),
       count(DISTINCT visitor) FILTER (WHERE visit_id IS NOT NULL AND conversions > 0),
       count(*) FILTER (WHERE counted),
       coalesce(sum(visit_pageviews) FILTER (WHERE counted), 0),
       count(*) FILTER (WHERE counted AND visit_events = 1),
       coalesce(sum(visit_duration) FILTER (WHERE counted), 0)
FROM (
    SELECT visit_id, any_value({VISITOR_KEY}) AS visitor, count(*) AS events,
           count(*) FILTER (WHERE kind = 'pageview') AS pageviews,
           count(*) FILTER (WHERE kind = 'click') AS clicks,
           count(*) FILTER (WHERE kind = 'custom') AS custom,
           count(*) FILTER (WHERE kind = 'success') AS conversions,
           {REVENUE} AS revenue,
           -- The visits counted (reports.visits): of a visitor, started in the range
           -- (at the parameter or later), with a page view from the browser.
           visit_id IS NOT NULL AND any_value(visit_at) >= ?
               AND any_value(visit_browser_pageviews) > 0 AS counted,
           any_value(visit_browser_pageviews) AS visit_pageviews,
           any_value(visit_events) AS visit_events,
           any_value(visit_duration_us) AS visit_duration
    FROM rows GROUP BY visit_id
)
"""  # noqa: S608 - the names and values are the module's own
_RULES = f"""
SELECT "name", count(*), {REVENUE}, {VISITORS}
FROM rows WHERE kind = 'success' AND "name" IS NOT NULL GROUP BY "name"
"""  # noqa: S608 - the names and values are the module's own
# A bucket holds the events from its start to the next bucket's start, the last one
# everything after its start (bisect over the starts; the table holds, of buckets with
# the same start, the last one).
_SERIES = f"""
SELECT b.i, count(*), {VISITORS}, count(*) FILTER (WHERE kind = 'success'), {REVENUE}
FROM rows ASOF JOIN {{buckets}} b ON rows.ts >= b.start
GROUP BY b.i
"""  # noqa: S608 - the names and values are the module's own
_PAGES = f"""
SELECT substr(page, 1, {MAX_PAGE}) AS p, count(*) AS n, {VISITORS}
FROM rows GROUP BY p ORDER BY n DESC, p LIMIT {TOP_PAGES}
"""  # noqa: S608 - the names and values are the module's own
_PROPERTY = f"""
SELECT {{value}} AS v, count(*) AS n, count(*) FILTER (WHERE kind = 'success'), {REVENUE}
FROM rows WHERE {{value}} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {TOP_VALUES}
"""  # noqa: S608 - the names and values are the module's own


def _totals(scope: Scope, start: datetime) -> Totals:
    """The totals of the rows that passed the filters (visits: those started at `start` or
    later)."""
    row = [int(x or 0) for x in scope.query(_TOTALS, [start])[0]]
    totals = Totals(
        events=row[0],
        pageviews=row[1],
        clicks=row[2],
        custom=row[3],
        conversions=row[4],
        revenue_micros=row[5],
        events_without_visitor=row[6],
        visitors=row[7],
        converters=row[8],
    )
    return VisitSums(*row[9:13]).apply(totals)


def _rules(site: Site, scope: Scope, totals: Totals) -> list[RuleRow]:
    """One row per success rule: the registered ones, and any other with conversions."""
    found = {name: [int(x) for x in figures] for name, *figures in scope.query(_RULES)}
    registered = db.session.scalars(
        select(SuccessRule.name)
        .where(SuccessRule.site_id == site.id)
        .order_by(SuccessRule.first_seen_at, SuccessRule.name)
    ).all()
    displays = rule_displays(site.id)
    out = []
    for name in dict.fromkeys([*registered, *sorted(found)]):
        display = displays.get(name)
        conversions, revenue, seen = found.get(name, (0, 0, 0))
        out.append(
            RuleRow(
                name=name,
                label=display.label if display and display.label else name,
                archived=bool(display and display.archived),
                conversions=conversions,
                converters=seen,
                conversion_rate=seen / totals.visitors if totals.visitors else 0.0,
                revenue_micros=revenue,
            )
        )
    return out


def _series(scope: Scope, buckets: list[Bucket]) -> list[SeriesPoint]:
    """The chart's buckets of the rows that passed the filters."""
    last = {bucket.start_utc: index for index, bucket in enumerate(buckets)}
    table = pa.table(
        {
            "i": pa.array(list(last.values()), pa.int32()),
            "start": pa.array(list(last), pa.timestamp("us")),
        }
    )
    name = table_name("buckets")
    scope.con.register(name, table)
    rows = scope.query(_SERIES.format(buckets=name))
    found = {i: [int(x) for x in figures] for i, *figures in rows}
    points = []
    for index, bucket in enumerate(buckets):
        events, visitors, conversions, revenue = found.get(index, (0, 0, 0, 0))
        points.append(SeriesPoint(bucket.label, events, visitors, conversions, revenue))
    return points


def _pages(scope: Scope) -> list[PageRow]:
    """The top pages by events, with their visitors."""
    return [PageRow(page, int(n), int(seen)) for page, n, seen in scope.query(_PAGES)]


def _scope(con, site: Site, rng: DateRange, filters: Sequence[Filter]) -> Scope:
    """The scope of the range's rows that pass the filters."""
    return Scope(con, events_relation(con, site.id, rng.start_utc, rng.end_utc), filters)


def _scopes(con, site: Site, rng: DateRange, filters: Sequence[Filter]) -> tuple[Scope, Scope]:
    """The scopes of the range's and of the previous period's rows that pass the filters,
    from one read of both: a row's values are the same whatever span it is read in (it
    holds its whole visit, rows.py), and the previous period ends where the range starts."""
    before = rng.previous()
    relation = events_relation(con, site.id, before.start_utc, rng.end_utc)
    ts, split = duckdb.ColumnExpression("ts"), duckdb.ConstantExpression(rng.start_utc)
    return (
        Scope(con, relation.filter(ts >= split), filters),
        Scope(con, relation.filter(ts < split), filters),
    )


def _stats(
    site: Site, rng: DateRange, filters: Sequence[Filter], previous_series: bool
) -> tuple[Stats, list[SeriesPoint] | None]:
    """stats.json's figures, and the previous period's chart buckets when asked."""
    con = connect()
    try:
        scope, earlier = _scopes(con, site, rng, filters)
        totals = _totals(scope, rng.start_utc)
        before = rng.previous()
        stats = Stats(
            range=rng,
            totals=totals,
            previous=_totals(earlier, before.start_utc),
            rules=_rules(site, scope, totals),
            series=_series(scope, rng.buckets()),
            pages=_pages(scope),
            granularity=rng.granularity(),
        )
        return stats, _series(earlier, before.buckets()) if previous_series else None
    finally:
        con.close()


def stats(site: Site, rng: DateRange, filters: Sequence[Filter]) -> Stats:
    """stats.json's figures over the events of the range that pass every filter."""
    return _stats(site, rng, filters, previous_series=False)[0]


def stats_and_previous_series(
    site: Site, rng: DateRange, filters: Sequence[Filter]
) -> tuple[Stats, list[SeriesPoint]]:
    """stats() and the previous period's chart buckets (series() of rng.previous()), from
    one read of both periods (the dashboard's figures and chart)."""
    found, previous = _stats(site, rng, filters, previous_series=True)
    return found, previous or []


def property_rows(
    site: Site, rng: DateRange, key: str, filters: Sequence[Filter]
) -> list[BreakdownRow]:
    """The top values of one property key (events, conversions, revenue) after filters."""
    dimension = PROPERTY_PREFIX + key[:MAX_KEY]
    con = connect()
    try:
        relation = events_relation(con, site.id, rng.start_utc, rng.end_utc)
        scope = Scope(con, relation, filters, [dimension])
        found = scope.query(_PROPERTY.format(value=scope.value(dimension)))
        # As the rollups: only the events that have the key.
        return [BreakdownRow(value, *(int(x) for x in figures)) for value, *figures in found]
    finally:
        con.close()


def series(site: Site, rng: DateRange, filters: Sequence[Filter]) -> list[SeriesPoint]:
    """The chart's buckets of the range over the events that pass every filter."""
    con = connect()
    try:
        return _series(_scope(con, site, rng, filters), rng.buckets())
    finally:
        con.close()
