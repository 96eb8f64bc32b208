"""The acquisition reports computed event by event in Python (raw_events), as they were
before they read the copy with SQL: the oracle the SQL reports are compared with."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select

from datalook.acquisition.dimensions import NONE, Filter
from datalook.analytics.ranges import Bucket, DateRange
from datalook.analytics.reports.breakdown import TOP_VALUES
from datalook.analytics.reports.model import (
    BreakdownRow,
    DimensionBreakdown,
    DimensionRow,
    PageRow,
    RuleRow,
    SeriesPoint,
    Stats,
    Totals,
)
from datalook.analytics.reports.pages import TOP_PAGES
from datalook.analytics.reports.raw_events import RawEvent, Visit, bucket_of, range_events, value_of
from datalook.analytics.reports.totals import rule_displays
from datalook.analytics.reports.visits import VisitSums
from datalook.analytics.rollups.models import MAX_KEY, MAX_PAGE
from datalook.extensions import db
from datalook.models import Site, SuccessRule


@dataclass
class _Figures:
    """What one value adds up to while the events are read."""

    visitors: set = field(default_factory=set)
    visits: set = field(default_factory=set)
    converters: set = field(default_factory=set)
    events: int = 0
    pageviews: int = 0
    conversions: int = 0
    revenue_micros: int = 0

    def add(self, event: RawEvent) -> None:
        """Count one event of this value."""
        self.events += 1
        success = event.kind == "success"
        if event.kind == "pageview":
            self.pageviews += 1
        elif success:
            self.conversions += 1
            self.revenue_micros += event.micros or 0
        if event.has_visitor:
            self.visitors.add(event.visitor)
            if event.visit is not None:
                self.visits.add(id(event.visit))
            if success:
                self.converters.add(event.visitor)

    def row(self, value: str) -> DimensionRow:
        """The row of this value."""
        return DimensionRow(
            value=value,
            visitors=len(self.visitors),
            visits=len(self.visits),
            pageviews=self.pageviews,
            conversions=self.conversions,
            converters=len(self.converters),
            revenue_micros=self.revenue_micros,
        )


def figures_by_value(events: Sequence[RawEvent], dimension: str) -> dict[str, _Figures]:
    """Each value of the dimension among `events` (NONE for none) and its figures."""
    found: dict[str, _Figures] = {}
    for event in events:
        value = value_of(dimension, event)
        key = NONE if value is None else value
        figures = found.get(key)
        if figures is None:
            figures = found[key] = _Figures()
        figures.add(event)
    return found


def dimension_rows(
    site: Site, rng: DateRange, dimension: str, filters: Sequence[Filter], limit: int, offset: int
) -> DimensionBreakdown:
    """One page of the dimension's rows over the range, after the filters."""
    events = range_events(
        site.id, rng.start_utc, rng.end_utc, filters, dimensions=[dimension], visits=True
    )
    rows = [figures.row(value) for value, figures in figures_by_value(events, dimension).items()]
    rows.sort(key=lambda row: (-row.visitors, row.value))
    return DimensionBreakdown(
        range=rng,
        dimension=dimension,
        filters=tuple(str(f) for f in filters),
        rows=rows[offset : offset + limit],
        total_rows=len(rows),
        limit=limit,
        offset=offset,
    )


def dimension_tables(
    site: Site, rng: DateRange, dimensions: Sequence[str], filters: Sequence[Filter], limit: int
) -> dict[str, DimensionBreakdown]:
    """The first `limit` rows of several dimensions over the range, after the filters: the
    rows dimension_rows gives, from one read of the range's events (the dashboard's panels)."""
    events = range_events(
        site.id, rng.start_utc, rng.end_utc, filters, dimensions=dimensions, visits=True
    )
    found = {}
    for dimension in dict.fromkeys(dimensions):
        rows = [f.row(value) for value, f in figures_by_value(events, dimension).items()]
        rows.sort(key=lambda row: (-row.visitors, row.value))
        found[dimension] = DimensionBreakdown(
            range=rng,
            dimension=dimension,
            filters=tuple(str(f) for f in filters),
            rows=rows[:limit],
            total_rows=len(rows),
            limit=limit,
            offset=0,
        )
    return found


_KINDS = {"pageview": "pageviews", "click": "clicks", "custom": "custom", "success": "conversions"}


def _totals(events: Sequence[RawEvent]) -> Totals:
    """The totals of events that passed the filters."""
    counts = dict.fromkeys(_KINDS.values(), 0)
    visitors: set[str] = set()
    converters: set[str] = set()
    revenue = without_visitor = 0
    for event in events:
        kind = _KINDS.get(event.kind)
        if kind:
            counts[kind] += 1
        success = event.kind == "success"
        if success:
            revenue += event.micros or 0
        if event.has_visitor:
            visitors.add(event.visitor)
            if success:
                converters.add(event.visitor)
        else:
            without_visitor += 1
    totals = Totals(
        events=len(events),
        pageviews=counts["pageviews"],
        clicks=counts["clicks"],
        custom=counts["custom"],
        conversions=counts["conversions"],
        revenue_micros=revenue,
        events_without_visitor=without_visitor,
        visitors=len(visitors),
        converters=len(converters),
    )
    return _visit_sums(events).apply(totals)


def _visit_sums(events: Sequence[RawEvent]) -> VisitSums:
    """The visit figures (reports.visits) of the visits that started in the range with an
    event that passed the filters: each such visit counted once, as a whole."""
    seen: dict[int, Visit] = {}
    for event in events:
        visit = event.visit
        if visit is None or visit.number is None or visit.started_before:
            continue
        if visit.browser_pageviews:
            seen.setdefault(id(visit), visit)
    return VisitSums(
        visits=len(seen),
        visit_pageviews=sum(v.browser_pageviews for v in seen.values()),
        bounces=sum(v.event_count == 1 for v in seen.values()),
        visit_duration_us=sum(v.duration_us for v in seen.values()),
    )


def _rules(site: Site, events: Sequence[RawEvent], totals: Totals) -> list[RuleRow]:
    """One row per success rule: the registered ones, and any other with conversions."""
    conversions: dict[str, int] = defaultdict(int)
    revenue: dict[str, int] = defaultdict(int)
    converters: dict[str, set] = defaultdict(set)
    for event in events:
        if event.kind == "success" and event.name is not None:
            conversions[event.name] += 1
            revenue[event.name] += event.micros or 0
            if event.has_visitor:
                converters[event.name].add(event.visitor)
    registered = db.session.scalars(
        select(SuccessRule.name)
        .where(SuccessRule.site_id == site.id)
        .order_by(SuccessRule.first_seen_at, SuccessRule.name)
    ).all()
    displays = rule_displays(site.id)
    out = []
    for name in dict.fromkeys([*registered, *sorted(conversions)]):
        display = displays.get(name)
        seen = len(converters.get(name, ()))
        out.append(
            RuleRow(
                name=name,
                label=display.label if display and display.label else name,
                archived=bool(display and display.archived),
                conversions=conversions.get(name, 0),
                converters=seen,
                conversion_rate=seen / totals.visitors if totals.visitors else 0.0,
                revenue_micros=revenue.get(name, 0),
            )
        )
    return out


def _series(events: Sequence[RawEvent], buckets: list[Bucket]) -> list[SeriesPoint]:
    """The chart's buckets of the events that passed the filters."""
    starts = [bucket.start_utc for bucket in buckets]
    counts = [[0, 0, 0] for _ in buckets]  # events, conversions, revenue
    visitors: list[set[str]] = [set() for _ in buckets]
    for event in events:
        index = bucket_of(starts, event.at)
        if index < 0:
            continue
        figures = counts[index]
        figures[0] += 1
        if event.has_visitor:
            visitors[index].add(event.visitor)
        if event.kind == "success":
            figures[1] += 1
            figures[2] += event.micros or 0
    return [
        SeriesPoint(bucket.label, figures[0], len(seen), figures[1], figures[2])
        for bucket, figures, seen in zip(buckets, counts, visitors, strict=True)
    ]


def _pages(events: Sequence[RawEvent]) -> list[PageRow]:
    """The top pages by events, with their visitors."""
    counts: dict[str, int] = defaultdict(int)
    visitors: dict[str, set] = defaultdict(set)
    for event in events:
        page = event.page[:MAX_PAGE]
        counts[page] += 1
        if event.has_visitor:
            visitors[page].add(event.visitor)
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_PAGES]
    return [PageRow(page, count, len(visitors.get(page, ()))) for page, count in top]


def _events(site: Site, rng: DateRange, filters: Sequence[Filter]) -> list[RawEvent]:
    """The counted events of the range that pass every filter."""
    return range_events(site.id, rng.start_utc, rng.end_utc, filters, whole_visits=True)


def stats(site: Site, rng: DateRange, filters: Sequence[Filter]) -> Stats:
    """stats.json's figures over the events of the range that pass every filter."""
    events = _events(site, rng, filters)
    totals = _totals(events)
    return Stats(
        range=rng,
        totals=totals,
        previous=_totals(_events(site, rng.previous(), filters)),
        rules=_rules(site, events, totals),
        series=_series(events, rng.buckets()),
        pages=_pages(events),
        granularity=rng.granularity(),
    )


def property_rows(
    site: Site, rng: DateRange, key: str, filters: Sequence[Filter]
) -> list[BreakdownRow]:
    """The top values of one property key (events, conversions, revenue) after filters."""
    key = key[:MAX_KEY]
    events = range_events(site.id, rng.start_utc, rng.end_utc, filters)
    figures: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for event in events:
        value = event.prop(key)
        if value is None:  # as the rollups: the events that have the key
            continue
        row = figures[value]
        row[0] += 1
        if event.kind == "success":
            row[1] += 1
            row[2] += event.micros or 0
    top = sorted(figures.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_VALUES]
    return [BreakdownRow(value, *numbers) for value, numbers in top]


def series(site: Site, rng: DateRange, filters: Sequence[Filter]) -> list[SeriesPoint]:
    """The chart's buckets of the range over the events that pass every filter."""
    return _series(_events(site, rng, filters), rng.buckets())
