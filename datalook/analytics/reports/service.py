"""The reports of a site over a date range, read from the summaries (analytics.summaries).

One interface, ``stats(site, date_range)`` and ``breakdown(...)``, so that another engine
could serve them later. A range is a UTC interval [start, end) cut at local midnights:
its whole UTC hours are read from the hourly rollups; in zones with sub-hour offsets the
partial hours at its edges are read from the raw events (less than an hour each side).

Unique visitors are exact (a COUNT DISTINCT over the raw events of the range) while the
range holds at most ``exact_limit`` events; above it they are HyperLogLog estimates merged
from the day and hour sketches (error about 0.8%), and ``visitors_exact`` is False.

What lies before the settled boundary (analytics.settled: buckets that late events can no
longer reach) is merged once per process and cached under the summaries' generation, so a
long range costs about as much as its last two weeks: its sketches are read and merged,
the older part comes from the cache, and the figures stay those of the summaries.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import String, and_, case, distinct, func, or_, select, type_coerce

from ...extensions import db
from ...models import Event, Site, SuccessRule
from .. import settled, sketches
from ..funnels.matching import is_visitor
from ..ranges import Bucket, DateRange
from ..rollups import accumulate as summaries
from ..rollups import fold
from ..rollups.accumulate import Accumulator
from ..rollups.models import (
    HourlyPage,
    HourlyProperty,
    HourlyRule,
    HourlyTotals,
    RuleDisplay,
    VisitorSketch,
)

log = logging.getLogger(__name__)

DEFAULT_EXACT_LIMIT = 5_000
TOP_PAGES = 20
TOP_VALUES = 20
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Totals:
    """Headline figures of one range."""

    events: int = 0
    pageviews: int = 0
    clicks: int = 0
    custom: int = 0
    conversions: int = 0
    revenue_micros: int = 0
    events_without_visitor: int = 0
    visitors: int = 0
    converters: int = 0
    visitors_exact: bool = True

    @property
    def conversion_rate(self) -> float:
        """Visitors who converted / visitors (0 without visitors)."""
        return self.converters / self.visitors if self.visitors else 0.0

    @property
    def without_visitor_share(self) -> float:
        """Share of the events that carry no visitor id."""
        return self.events_without_visitor / self.events if self.events else 0.0


@dataclass(frozen=True)
class RuleRow:
    """One success rule's figures in the range."""

    name: str
    label: str
    archived: bool
    conversions: int
    converters: int
    conversion_rate: float
    revenue_micros: int

    @property
    def average_micros(self) -> int:
        """Average value of a conversion, in millionths (rounded down)."""
        return self.revenue_micros // self.conversions if self.conversions else 0


@dataclass(frozen=True)
class SeriesPoint:
    """One bucket of the chart."""

    label: str
    events: int
    visitors: int
    conversions: int
    revenue_micros: int


@dataclass(frozen=True)
class PageRow:
    """One page path's events and visitors."""

    page_path: str
    events: int
    visitors: int


@dataclass(frozen=True)
class BreakdownRow:
    """One value of a property key."""

    value: str
    events: int
    conversions: int
    revenue_micros: int


@dataclass(frozen=True)
class Stats:
    """Everything the dashboard and stats.json show for one range."""

    range: DateRange
    totals: Totals
    previous: Totals
    rules: list[RuleRow]
    series: list[SeriesPoint]
    pages: list[PageRow]
    granularity: str


# --- time pieces -------------------------------------------------------------------------


def _floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding `moment`."""
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    """The first whole UTC hour at or after `moment`."""
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + HOUR


def split(start: datetime, end: datetime) -> tuple[tuple[datetime, datetime] | None, list]:
    """Split [start, end) into whole UTC hours (or None) and the partial pieces around them."""
    inner_start, inner_end = _ceil_hour(start), _floor_hour(end)
    if inner_start >= inner_end:
        return None, [(start, end)] if start < end else []
    edges = [(a, b) for a, b in ((start, inner_start), (inner_end, end)) if a < b]
    return (inner_start, inner_end), edges


def _raw_rows(site_id: int, start: datetime, end: datetime) -> list:
    """The raw event rows of [start, end), as the fold reads them (a bounded piece)."""
    return db.session.execute(  # type: ignore[return-value]
        select(*summaries.EVENT_COLUMNS).where(
            Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < end
        )
    ).all()


def _raw_acc(site_id: int, pieces: list) -> Accumulator:
    """The fold of the raw events in the partial pieces."""
    acc = Accumulator()
    for start, end in pieces:
        for row in _raw_rows(site_id, start, end):
            acc.add(row)
    return acc


# --- counts ------------------------------------------------------------------------------

_TOTAL_COLUMNS = ("events", "pageviews", "clicks", "custom", "conversions")


def _money(units, rest) -> int:
    """Exact millionths from summed units and remainders."""
    return int(units or 0) * 1_000_000 + int(rest or 0)


def _counts(site_id: int, start: datetime, end: datetime) -> dict:
    """Event counts, conversions, revenue and events without visitor in [start, end)."""
    inner, edges = split(start, end)
    out = dict.fromkeys((*_TOTAL_COLUMNS, "revenue_micros", "events_without_visitor"), 0)
    if inner:
        t = HourlyTotals
        row = db.session.execute(
            select(
                *[func.coalesce(func.sum(getattr(t, name)), 0) for name in _TOTAL_COLUMNS],
                func.coalesce(func.sum(t.revenue_units), 0),
                func.coalesce(func.sum(t.revenue_rest), 0),
                func.coalesce(func.sum(t.without_visitor), 0),
            ).where(t.site_id == site_id, t.hour >= inner[0], t.hour < inner[1])
        ).one()
        for name, value in zip(_TOTAL_COLUMNS, row[:5], strict=True):
            out[name] = int(value)
        out["revenue_micros"] = _money(row[5], row[6])
        out["events_without_visitor"] = int(row[7])
    if edges:
        acc = _raw_acc(site_id, edges)
        for values in acc.totals.values():
            for index, name in enumerate(_TOTAL_COLUMNS):
                out[name] += values[index]
            out["revenue_micros"] += _money(values[5], values[6])
            out["events_without_visitor"] += values[7]
    return out


# --- visitors ------------------------------------------------------------------------------


@dataclass
class _ExactVisitors:
    """Distinct visitors of a range, counted from its raw events."""

    everyone: set = field(default_factory=set)
    converters: set = field(default_factory=set)
    rules: dict = field(default_factory=lambda: defaultdict(set))
    pages: dict = field(default_factory=lambda: defaultdict(set))
    buckets: list = field(default_factory=list)


def _exact_visitors(site_id: int, start: datetime, end: datetime, buckets: list) -> _ExactVisitors:
    """Collect the visitor ids of [start, end) per dimension and per chart bucket."""
    found = _ExactVisitors(buckets=[set() for _ in buckets])
    occurred_at: Any = Event.occurred_at
    starts: list = [bucket.start_utc for bucket in buckets]
    if db.engine.dialect.name == "sqlite":
        # Compare SQLite's stored text with the bucket starts in the same spelling: parsing a
        # datetime per row cost more than the rest of the pass.
        occurred_at = type_coerce(Event.occurred_at, String)
        starts = [start.isoformat(" ", "microseconds") for start in starts]
    rows = db.session.execute(
        select(Event.visitor_id, occurred_at, Event.event_name, Event.name, Event.page_path)
        .where(Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < end)
        .where(Event.visitor_id.not_like("a:%"), Event.counted())
    )
    for visitor, occurred, kind, name, page in rows:
        if not is_visitor(visitor):
            continue
        found.everyone.add(visitor)
        found.pages[page[: summaries.MAX_PAGE]].add(visitor)
        if kind == "success":
            found.converters.add(visitor)
            if name is not None:
                found.rules[name].add(visitor)
        if starts:
            found.buckets[bisect.bisect_right(starts, occurred) - 1].add(visitor)
    return found


WEEK = timedelta(days=7)


def pieces(start: datetime, end: datetime, weeks: bool) -> tuple[list, list]:
    """Cover [start, end) with stored spans, largest first: (hours, a, b) pieces of whole
    UTC weeks (from Monday; sketches only), days and hours, and the sub-hour edges left."""
    inner, edges = split(start, end)
    if not inner:
        return [], edges
    first_day = inner[0].replace(hour=0)
    if first_day < inner[0]:
        first_day += DAY
    last_day = inner[1].replace(hour=0)
    if first_day >= last_day:
        return [(1, *inner)], edges
    out = [(1, a, b) for a, b in ((inner[0], first_day), (last_day, inner[1])) if a < b]
    first_week = first_day + timedelta(days=(7 - first_day.weekday()) % 7)
    last_week = last_day - timedelta(days=last_day.weekday())
    if weeks and first_week < last_week:
        out.append((168, first_week, last_week))
        out += [(24, a, b) for a, b in ((first_day, first_week), (last_week, last_day)) if a < b]
    else:
        out.append((24, first_day, last_day))
    return out, edges


def _covering(table, start: datetime, end: datetime):
    """A condition selecting day rows for the whole UTC days of [start, end) and hour rows
    around them (None if no whole hour), and the sub-hour pieces left for raw events."""
    spans, edges = pieces(start, end, weeks=False)
    parts = [and_(table.hours == n, table.hour >= a, table.hour < b) for n, a, b in spans]
    if not parts:
        return None, edges
    return (parts[0] if len(parts) == 1 else or_(*parts)), edges


def _loose_ids(site_id: int, edges: list, dims: list[str]) -> dict[str, set]:
    """Visitor ids per dimension in the sub-hour edges, from raw events."""
    loose: dict[str, set] = {dim: set() for dim in dims}
    for a, b in edges:
        for row in _raw_rows(site_id, a, b):
            visitor, kind, name, page = row[5], row[2], row[3], row[4][: summaries.MAX_PAGE]
            if not is_visitor(visitor):
                continue
            for dim in ("", "p:" + page, *(("c", f"r:{name}") if kind == "success" else ())):
                if dim in loose:
                    loose[dim].add(visitor)
    return loose


def _stored(site_id: int, dims: list[str], spans: list) -> dict[str, list]:
    """The stored sketches of each dimension over the (hours, start, end) spans."""
    stored: dict[str, list] = {dim: [] for dim in dims}
    s = VisitorSketch
    for span, a, b in spans:
        rows = db.session.execute(
            select(s.dim, s.sketch).where(
                s.site_id == site_id, s.hours == span, s.dim.in_(dims), s.start >= a, s.start < b
            )
        )
        for dim, data in rows:
            stored[dim].append(data)
    return stored


def cut_spans(spans: list, cut: datetime) -> tuple[list, list]:
    """Split (hours, start, end) spans at `cut` (a UTC Monday midnight, which every span
    size divides): the spans before it and those after."""
    before, after = [], []
    for n, a, b in spans:
        if b <= cut:
            before.append((n, a, b))
        elif a >= cut:
            after.append((n, a, b))
        else:
            before.append((n, a, cut))
            after.append((n, cut, b))
    return before, after


def _settled_sketches(site_id: int, dims: list[str], spans: list, edges: list, gen: int) -> dict:
    """The merged sketch of each dimension over settled spans and edges, from the cache or
    read once and cached (None for a dimension without visitors there)."""
    if not spans and not edges:
        return dict.fromkeys(dims)
    shape = (tuple(spans), tuple(edges))
    found = {dim: settled.cache.get((site_id, gen, "dim", dim, shape)) for dim in dims}
    missing = [dim for dim in dims if found[dim] is None]
    if missing:
        stored = _stored(site_id, missing, spans)
        loose = _loose_ids(site_id, edges, missing)
        for dim in missing:
            merged = sketches.union_of(stored[dim], loose[dim])
            # An empty part is cached too (as False), or it would be read again each time.
            settled.cache.put((site_id, gen, "dim", dim, shape), merged or False)
            found[dim] = merged
    return {dim: found[dim] or None for dim in dims}


def _estimates(
    site_id: int, dims: list[str], start: datetime, end: datetime, gen: int | None = None
) -> dict[str, int]:
    """Estimated distinct visitors per dimension in [start, end), from the sketches.

    With a generation (see analytics.settled), the part of the range before the settled
    boundary comes merged from the cache: a long range then reads only its last weeks.
    """
    spans, edges = pieces(start, end, weeks=True)
    base: dict = dict.fromkeys(dims)
    if gen is not None:
        cut = settled.boundary()
        old_spans, spans = cut_spans(spans, cut)
        old_edges = [edge for edge in edges if edge[1] <= cut]
        edges = [edge for edge in edges if edge[1] > cut]
        base = _settled_sketches(site_id, dims, old_spans, old_edges, gen)
    stored = _stored(site_id, dims, spans)
    loose = _loose_ids(site_id, edges, dims)
    return {dim: sketches.estimate_with(base[dim], stored[dim], loose[dim]) for dim in dims}


# --- the report ----------------------------------------------------------------------------


def exact_limit() -> int:
    """Largest number of events in a range whose visitors are counted exactly."""
    return int(current_app.config.get("ANALYTICS_EXACT_EVENTS", DEFAULT_EXACT_LIMIT))


def _distinct_visitors(site_id: int, start: datetime, end: datetime) -> tuple[int, int]:
    """Exact distinct visitors and converters of [start, end), counted by the database."""
    visitor = Event.visitor_id
    converter = case((Event.event_name == "success", visitor))
    row = db.session.execute(
        select(func.count(distinct(visitor)), func.count(distinct(converter)))
        .where(Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < end)
        .where(visitor.not_like("a:%"), Event.counted())
    ).one()
    return int(row[0]), int(row[1])


def _totals(
    site_id: int, rng: DateRange, limit: int, buckets: list | None = None, gen: int | None = None
) -> tuple[Totals, _ExactVisitors | None]:
    """Totals of a range; with `buckets`, the exact visitor sets too (if the range is small
    enough), for the rules, pages and chart."""
    counts = _counts(site_id, rng.start_utc, rng.end_utc)
    if counts["events"] <= limit and buckets is None:
        visitors, converters = _distinct_visitors(site_id, rng.start_utc, rng.end_utc)
        return Totals(**counts, visitors=visitors, converters=converters), None
    if counts["events"] <= limit and buckets is not None:
        found = _exact_visitors(site_id, rng.start_utc, rng.end_utc, buckets)
        return Totals(
            **counts, visitors=len(found.everyone), converters=len(found.converters)
        ), found
    estimated = _estimates(site_id, ["", "c"], rng.start_utc, rng.end_utc, gen)
    return Totals(
        **counts, visitors=estimated[""], converters=estimated["c"], visitors_exact=False
    ), None


def _rule_displays(site_id: int) -> dict[str, RuleDisplay]:
    """The display settings of a site's rules, by name."""
    rows = db.session.scalars(select(RuleDisplay).where(RuleDisplay.site_id == site_id))
    return {row.name: row for row in rows}


def _rules(
    site_id: int, rng: DateRange, totals: Totals, exact: _ExactVisitors | None, gen: int
) -> list:
    """One row per success rule: registered ones, and any with conversions in the range."""
    r = HourlyRule
    covered, edges = _covering(r, rng.start_utc, rng.end_utc)
    figures: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    if covered is not None:
        rows = db.session.execute(
            select(
                r.name, func.sum(r.conversions), func.sum(r.revenue_units), func.sum(r.revenue_rest)
            )
            .where(r.site_id == site_id, covered)
            .group_by(r.name)
        )
        for name, conversions, units, rest in rows:
            figures[name] = [int(conversions), _money(units, rest)]
    if edges:
        for (_s, span, _h, name), values in _raw_acc(site_id, edges).rules.items():
            if span == 1:
                figures[name][0] += values[0]
                figures[name][1] += _money(values[1], values[2])
    registered = db.session.scalars(
        select(SuccessRule.name)
        .where(SuccessRule.site_id == site_id)
        .order_by(SuccessRule.first_seen_at, SuccessRule.name)
    ).all()
    names = list(dict.fromkeys([*registered, *sorted(figures)]))
    if exact is not None:
        converters = {name: len(exact.rules.get(name, ())) for name in names}
    else:
        dims = [f"r:{n}" for n in names]
        estimated = _estimates(site_id, dims, rng.start_utc, rng.end_utc, gen)
        converters = {name: estimated[f"r:{name}"] for name in names}
    displays = _rule_displays(site_id)
    out = []
    for name in names:
        conversions, revenue = figures.get(name, (0, 0))
        display = displays.get(name)
        rate = converters[name] / totals.visitors if totals.visitors else 0.0
        out.append(
            RuleRow(
                name=name,
                label=(display.label if display and display.label else name),
                archived=bool(display and display.archived),
                conversions=conversions,
                converters=converters[name],
                conversion_rate=rate,
                revenue_micros=revenue,
            )
        )
    return out


def _as_stored(moment: datetime) -> datetime | str:
    """A time as the hour column reads back: SQLite's text, or a datetime elsewhere."""
    if db.engine.dialect.name == "sqlite":
        return moment.isoformat(" ", "microseconds")
    return moment


def _hourly_prefix(site_id: int, start: datetime, end: datetime):
    """Sorted hours of [start, end) with running sums of events, conversions and revenue."""
    t = HourlyTotals
    hour: Any = t.hour
    if db.engine.dialect.name == "sqlite":  # keep the stored text: no datetime per row
        hour = type_coerce(t.hour, String)
    rows = db.session.execute(
        select(hour, t.events, t.conversions, t.revenue_units, t.revenue_rest)
        .where(t.site_id == site_id, t.hour >= start, t.hour < end)
        .order_by(t.hour)
    ).all()
    hours = [row[0] for row in rows]
    sums = [(0, 0, 0)]
    for _hour, events, conversions, units, rest in rows:
        last = sums[-1]
        sums.append((last[0] + events, last[1] + conversions, last[2] + _money(units, rest)))
    return hours, sums


def _bucket_visitor_estimates(site_id: int, buckets: list[Bucket]) -> list[int]:
    """Estimated visitors per bucket: one query per span size, merged in memory."""
    if not buckets:
        return []
    plans = [pieces(b.start_utc, b.end_utc, weeks=True) for b in buckets]
    s = VisitorSketch
    first, last = buckets[0].start_utc - WEEK, buckets[-1].end_utc
    stored: dict[int, tuple[list, list]] = {}
    for span in sorted({n for spans, _ in plans for n, _a, _b in spans}):
        rows = db.session.execute(
            select(s.start, s.sketch)
            .where(
                s.site_id == site_id,
                s.hours == span,
                s.dim == "",
                s.start >= first,
                s.start < last,
            )
            .order_by(s.start)
        ).all()
        stored[span] = ([row[0] for row in rows], [row[1] for row in rows])
    out = []
    for spans, edges in plans:
        found = []
        for span, a, b in spans:
            starts, data = stored[span]
            found += data[bisect.bisect_left(starts, a) : bisect.bisect_left(starts, b)]
        out.append(sketches.estimate(found, _loose_ids(site_id, edges, [""])[""]))
    return out


def _series(
    site_id: int, rng: DateRange, buckets: list[Bucket], exact: _ExactVisitors | None, gen: int
) -> list[SeriesPoint]:
    """The chart's buckets with events, visitors, conversions and revenue.

    Estimated buckets that end before the settled boundary come from the cache (see
    analytics.settled); the others are read.
    """
    if exact is not None:
        return _bucket_points(site_id, buckets, [len(ids) for ids in exact.buckets])
    cut = settled.boundary()
    keys = [(site_id, gen, "bucket", b.label, b.start_utc, b.end_utc) for b in buckets]
    found: list[Any] = [
        settled.cache.get(key) if b.end_utc <= cut else None
        for key, b in zip(keys, buckets, strict=True)
    ]
    todo = [index for index, point in enumerate(found) if point is None]
    if todo:
        missing = [buckets[index] for index in todo]
        points = _bucket_points(site_id, missing, _bucket_visitor_estimates(site_id, missing))
        for index, point in zip(todo, points, strict=True):
            found[index] = point
            if buckets[index].end_utc <= cut:
                settled.cache.put(keys[index], point)
    return found


def _bucket_points(site_id: int, buckets: list[Bucket], visitors: list[int]) -> list[SeriesPoint]:
    """The buckets' events, conversions and revenue (from the rollups), with their visitors."""
    if not buckets:
        return []
    hours, sums = _hourly_prefix(site_id, buckets[0].start_utc, buckets[-1].end_utc)
    points = []
    for bucket, seen in zip(buckets, visitors, strict=True):
        inner, edges = split(bucket.start_utc, bucket.end_utc)
        figures = [0, 0, 0]
        if inner:
            low = bisect.bisect_left(hours, _as_stored(inner[0]))
            high = bisect.bisect_left(hours, _as_stored(inner[1]))
            figures = [sums[high][i] - sums[low][i] for i in range(3)]
        if edges:
            for values in _raw_acc(site_id, edges).totals.values():
                figures[0] += values[0]
                figures[1] += values[4]
                figures[2] += _money(values[5], values[6])
        points.append(SeriesPoint(bucket.label, figures[0], seen, figures[1], figures[2]))
    return points


def _pages(site_id: int, rng: DateRange, exact: _ExactVisitors | None, gen: int) -> list[PageRow]:
    """The top pages by events, with their visitors."""
    p = HourlyPage
    covered, edges = _covering(p, rng.start_utc, rng.end_utc)
    events: dict[str, int] = defaultdict(int)
    if covered is not None:
        total = func.sum(p.events)
        rows = db.session.execute(
            select(p.page_path, total)
            .where(p.site_id == site_id, covered)
            .group_by(p.page_path)
            .order_by(total.desc(), p.page_path)
            .limit(TOP_PAGES * 2 if edges else TOP_PAGES)
        )
        for path, count in rows:
            events[path] = int(count)
    if edges:
        for (_s, span, _h, path), count in _raw_acc(site_id, edges).pages.items():
            if span == 1:
                events[path] += count
    top = sorted(events.items(), key=lambda item: (-item[1], item[0]))[:TOP_PAGES]
    if exact is not None:
        seen = {path: len(exact.pages.get(path, ())) for path, _ in top}
    else:
        dims = [f"p:{p}" for p, _ in top]
        estimated = _estimates(site_id, dims, rng.start_utc, rng.end_utc, gen)
        seen = {path: estimated[f"p:{path}"] for path, _ in top}
    return [PageRow(path, count, seen[path]) for path, count in top]


def stats(site: Site, rng: DateRange, limit: int | None = None) -> Stats:
    """The reports of one site over one range (the summaries must be caught up first)."""
    limit = exact_limit() if limit is None else limit
    buckets = rng.buckets()
    gen = settled.generation(db.session)
    totals, exact = _totals(site.id, rng, limit, buckets, gen)
    previous, _ = _totals(site.id, rng.previous(), limit, None, gen)
    return Stats(
        range=rng,
        totals=totals,
        previous=previous,
        rules=_rules(site.id, rng, totals, exact, gen),
        series=_series(site.id, rng, buckets, exact, gen),
        pages=_pages(site.id, rng, exact, gen),
        granularity=rng.granularity(),
    )


def breakdown(site: Site, rng: DateRange, key: str) -> list[BreakdownRow]:
    """The top values of one property key: events, conversions, revenue."""
    key = key[: summaries.MAX_KEY]
    p = HourlyProperty
    covered, edges = _covering(p, rng.start_utc, rng.end_utc)
    figures: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    if covered is not None:
        rows = db.session.execute(
            select(
                p.value,
                func.sum(p.events),
                func.sum(p.conversions),
                func.sum(p.revenue_units),
                func.sum(p.revenue_rest),
            )
            .where(p.site_id == site.id, p.key == key, covered)
            .group_by(p.value)
        )
        for value, count, conversions, units, rest in rows:
            figures[value] = [int(count), int(conversions), _money(units, rest)]
    if edges:
        for (_s, name, span, _h, value), c in _raw_acc(site.id, edges).properties.items():
            if name == key and span == 1:
                row = figures[value]
                row[0] += c[0]
                row[1] += c[1]
                row[2] += _money(c[2], c[3])
    top = sorted(figures.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_VALUES]
    return [BreakdownRow(value, *numbers) for value, numbers in top]


def property_keys(site: Site, limit: int = 50) -> list[str]:
    """Property keys seen on the site's events (for the breakdown's choice).

    One index seek per key (a skip scan): DISTINCT read every summary row of the site.
    """
    keys: list[str] = []
    p = HourlyProperty
    while len(keys) < limit:
        after = select(func.min(p.key)).where(p.site_id == site.id)
        if keys:
            after = after.where(p.key > keys[-1])
        found = db.session.scalar(after)
        if found is None:
            break
        keys.append(found)
    return keys


def first_day_utc(site: Site) -> datetime | None:
    """When the site's first summarised hour starts (bounds "All time")."""
    return db.session.scalar(
        select(func.min(HourlyTotals.hour)).where(HourlyTotals.site_id == site.id)
    )


def recent_events(site_id: int, limit: int = 20) -> list[Event]:
    """The newest events of a site (the dashboard's live list).

    Newest by occurrence, read backwards along the (site_id, occurred_at) index: ordering by
    id made SQLite sort every event of the site (370 ms at 300,000 events).
    """
    return list(
        db.session.scalars(
            select(Event)
            .where(Event.site_id == site_id)
            .order_by(Event.occurred_at.desc(), Event.id.desc())
            .limit(limit)
        )
    )


def catch_up(max_batches: int | None = 10) -> None:
    """Fold the events stored since the last fold (a bounded number: a backlog is the fold
    thread's work), then start a fresh read. A failing fold is logged and the report is
    served from the summaries as they are."""
    try:
        fold.catch_up(db.engine, current_app.instance_path, max_batches)
    except Exception:  # the page must not fail because the fold did
        log.exception("analytics: catching up before a report failed")
    db.session.commit()  # a SQLite read transaction begun earlier would miss the fold
