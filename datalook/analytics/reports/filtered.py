"""The reports of a range with filters: stats.json's figures and the property breakdown,
counted exactly from the events that pass every filter (raw_events).

Visit figures count the visits (reports.visits) that started in the range and hold an
event of the range that passes every filter, each as a whole (all of its events).

The same figures as the unfiltered reports read from the rollups, over fewer events: totals
and the previous period, one row per success rule, the chart's buckets and the top pages.
Visitors are always exact here (`visitors_exact` is true).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import select

from ...acquisition.dimensions import Filter
from ...extensions import db
from ...models import Site, SuccessRule
from ..ranges import Bucket, DateRange
from ..rollups.models import MAX_KEY, MAX_PAGE
from .breakdown import TOP_VALUES
from .model import BreakdownRow, PageRow, RuleRow, SeriesPoint, Stats, Totals
from .pages import TOP_PAGES
from .raw_events import RawEvent, Visit, bucket_of, range_events
from .totals import rule_displays
from .visits import VisitSums

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
