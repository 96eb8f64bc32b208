"""The reports of a range with filters: stats.json's figures and the property breakdown,
counted exactly from the range's rows in the copy (store.read) that pass every filter
(store_sql).

Visit figures count the visits (reports.visits) that started in the range and hold an
event of the range that passes every filter, each as a whole (all of its events: the copy
holds each row's visit figures).

The same figures as the unfiltered reports read from the rollups, over fewer events: totals
and the previous period, one row per success rule, the chart's buckets and the top pages,
all from one reading of the rows of both periods (period_figures). Visitors are always
exact here (`visitors_exact` is true).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select

from ...acquisition.dimensions import PROPERTY_PREFIX, Filter
from ...extensions import db
from ...models import Site, SuccessRule
from ..ranges import Bucket, DateRange
from ..rollups.models import MAX_KEY
from ..store.read import connect, events_relation
from . import period_figures
from .breakdown import TOP_VALUES
from .model import BreakdownRow, RuleRow, SeriesPoint, Stats, Totals
from .store_sql import REVENUE, Scope
from .totals import rule_displays

_PROPERTY = f"""
SELECT {{value}} AS v, count(*) AS n, count(*) FILTER (WHERE kind = 'success'), {REVENUE}
FROM rows WHERE {{value}} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT {TOP_VALUES}
"""  # noqa: S608 - the names and values are the module's own


def _rules(site: Site, found: period_figures.Found, totals: Totals) -> list[RuleRow]:
    """One row per success rule: the registered ones, and any other with conversions."""
    registered = db.session.scalars(
        select(SuccessRule.name)
        .where(SuccessRule.site_id == site.id)
        .order_by(SuccessRule.first_seen_at, SuccessRule.name)
    ).all()
    displays = rule_displays(site.id)
    out = []
    for name in dict.fromkeys([*registered, *sorted(found.rules)]):
        display = displays.get(name)
        conversions, revenue, seen = found.rules.get(name, (0, 0, 0))
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


def _series(found: period_figures.Found, buckets: list[Bucket], first: int) -> list[SeriesPoint]:
    """The chart's buckets, labelled, of a period whose first bucket has index `first` in
    the buckets read."""
    empty = SeriesPoint("", 0, 0, 0, 0)
    return [
        replace(found.series.get(first + index, empty), label=bucket.label)
        for index, bucket in enumerate(buckets)
    ]


def _scope(con, site: Site, start: datetime, end: datetime, filters: Sequence[Filter]) -> Scope:
    """The scope of the rows of [start, end) that pass the filters."""
    return Scope(con, events_relation(con, site.id, start, end), filters)


def _stats(
    site: Site, rng: DateRange, filters: Sequence[Filter], previous_series: bool
) -> tuple[Stats, list[SeriesPoint] | None]:
    """stats.json's figures, and the previous period's chart buckets when asked, from one
    reading of the rows of both periods: a row's values are the same whatever span it is
    read in (it holds its whole visit, rows.py), and the previous period ends where the
    range starts."""
    before = rng.previous()
    buckets, earlier = rng.buckets(), before.buckets() if previous_series else []
    con = connect()
    try:
        scope = _scope(con, site, before.start_utc, rng.end_utc, filters)
        found = period_figures.read(scope, rng.start_utc, before.start_utc, [*earlier, *buckets])
    finally:
        con.close()
    totals = found.period(True)
    stats = Stats(
        range=rng,
        totals=totals,
        previous=found.period(False),
        rules=_rules(site, found, totals),
        series=_series(found, buckets, len(earlier)),
        pages=found.pages,
        granularity=rng.granularity(),
    )
    return stats, _series(found, earlier, 0) if previous_series else None


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
    buckets = rng.buckets()
    con = connect()
    try:
        scope = _scope(con, site, rng.start_utc, rng.end_utc, filters)
        found = period_figures.read(scope, rng.start_utc, rng.start_utc, buckets, ("series",))
    finally:
        con.close()
    return _series(found, buckets, 0)
