"""The events of a range read one by one, for the reports that the rollups cannot answer
exactly: a breakdown by any dimension (breakdown.json) and any report with filters.

Each counted event of the range (never a test key's) is read with its acquisition columns,
placed in its visit, and given the value of any dimension (`value_of`):

- a visit is a session as analytics.sessions defines it: a visitor's run of events with no
  gap over sessions.GAP (30 minutes). Events without a visitor ("a:" ids) are a visit of
  their own that is not counted as one.
- The acquisition of a visit is that of its first event (VISIT_DIMENSIONS: channel,
  source, medium, campaign, term, content, referrer): every event of a visit that came
  from Google counts for Google, the page views after the landing and a conversion on
  the server too, when they share the visitor. entry_page and exit_page are the visit's
  first and last page views.
- A visit may start before the range or end after it: its events outside the range are
  read too (backwards and forwards from the range, in growing slices, until the gap
  ends it), so a visit's values are the same whatever range shows it.
- Values: the stored value; NOT_RECORDED for an event stored before the acquisition columns
  existed (NULL); None where the event has no such value (stored ""), which reports show
  as NONE. `rule` is a success event's rule name (None for other events); `prop:<key>`
  the property's value as the property breakdown writes it.

A filter (acquisition.dimensions.Filter) keeps the events whose value passes it; all of
them must pass.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select

from ...acquisition.dimensions import DIMENSIONS, NOT_RECORDED, Filter, property_key
from ...extensions import db
from ...models import ACQUISITION_LENGTHS, Event
from ..rollups.accumulate import property_text
from ..sessions import GAP
from ..visitor_ids import is_visitor

#: Dimensions whose value is that of the visit's first event.
VISIT_DIMENSIONS = frozenset(
    {"channel", "source", "medium", "campaign", "term", "content", "referrer"}
)
#: Dimensions read from the event's own acquisition columns.
EVENT_COLUMN_DIMENSIONS = frozenset({"country", "region", "city", "device", "browser", "os"})
#: The dimensions these reports give (every one; region and city are "(not recorded)" on
#: a server without a GEOIP_DATABASE), and `prop:<key>`.
SUPPORTED = DIMENSIONS
_ACQUISITION = tuple(ACQUISITION_LENGTHS)
_INDEX = {name: index for index, name in enumerate(_ACQUISITION)}
_COLUMNS = (
    Event.id,
    Event.visitor_id,
    Event.occurred_at,
    Event.event_name,
    Event.name,
    Event.page_path,
    Event.success_value_micros,
    Event.properties,
    Event.from_browser,
    *(getattr(Event, name) for name in _ACQUISITION),
)
# Visitors per query when reading a visit's events outside the range.
_VISITORS_PER_QUERY = 500


class RawEvent:
    """One stored event with what the reports read of it."""

    __slots__ = (
        "id",
        "visitor",
        "at",
        "kind",
        "name",
        "page",
        "micros",
        "properties",
        "from_browser",
        "acquisition",
        "visit",
        "_props",
    )

    def __init__(self, row: Sequence) -> None:
        self.id, self.visitor, self.at, self.kind, self.name, self.page = row[:6]
        self.micros: int | None = row[6]
        self.properties: str | None = row[7]
        self.from_browser = bool(row[8])
        self.acquisition: tuple = tuple(row[9:])
        self.visit: Visit | None = None
        self._props: dict | None = None

    @property
    def has_visitor(self) -> bool:
        """Whether the event names a visitor (not a per-event anonymous id)."""
        return is_visitor(self.visitor)

    def prop(self, key: str) -> str | None:
        """The value of one property, as text (None when the event has no such property)."""
        if self._props is None:
            self._props = orjson.loads(self.properties) if self.properties else {}
        if key not in self._props:
            return None
        return property_text(self._props[key])


@dataclass(eq=False)
class Visit:
    """One visit (session): its first event, first and last page view, its number, and
    (when read with the events before and after the range) its figures as a whole:
    `started_before` the range, its events, the browser's page views and its span."""

    first: RawEvent
    number: int | None  # None: the one-event visit of an event without a visitor
    entry_page: str | None = None
    exit_page: str | None = None
    events: list[RawEvent] = field(default_factory=list)
    started_before: bool = False
    event_count: int = 0
    browser_pageviews: int = 0
    duration_us: int = 0


def stored_value(value: str | None) -> str | None:
    """A stored acquisition value as a dimension's value: NULL is NOT_RECORDED, "" None."""
    if value is None:
        return NOT_RECORDED
    return value or None


def value_of(dimension: str, event: RawEvent) -> str | None:
    """The event's value of a dimension (None: the event has none, shown as "(none)")."""
    if dimension in VISIT_DIMENSIONS:
        visit = event.visit
        first = visit.first if visit is not None else event
        return stored_value(first.acquisition[_INDEX[dimension]])
    if dimension in EVENT_COLUMN_DIMENSIONS:
        return stored_value(event.acquisition[_INDEX[dimension]])
    if dimension == "page":
        return event.page
    if dimension == "rule":
        return event.name if event.kind == "success" else None
    if dimension in ("entry_page", "exit_page"):
        visit = event.visit
        if visit is None:
            return event.page if event.kind == "pageview" else None
        return visit.entry_page if dimension == "entry_page" else visit.exit_page
    key = property_key(dimension)
    if key is None:
        raise ValueError(f"not a dimension of these reports: {dimension!r}")
    return event.prop(key)


def matches(filters: Iterable[Filter], event: RawEvent) -> bool:
    """Whether the event passes every filter."""
    return all(f.matches(value_of(f.dimension, event)) for f in filters)


def _rows(site_id: int, start: datetime, end: datetime, visitors: Sequence[str] | None = None):
    """The counted events of [start, end) (of these visitors only, when given), in order."""
    query = (
        select(*_COLUMNS)
        .where(Event.site_id == site_id, Event.occurred_at >= start, Event.occurred_at < end)
        .where(Event.counted())
        .order_by(Event.occurred_at, Event.id)
    )
    if visitors is None:
        return [RawEvent(row) for row in db.session.execute(query)]
    found = []
    for offset in range(0, len(visitors), _VISITORS_PER_QUERY):
        chunk = visitors[offset : offset + _VISITORS_PER_QUERY]
        found += [
            RawEvent(row) for row in db.session.execute(query.where(Event.visitor_id.in_(chunk)))
        ]
    found.sort(key=lambda event: (event.at, event.id))
    return found


def _outside(
    site_id: int, edge: datetime, ends: dict[str, datetime], forwards: bool
) -> dict[str, list[RawEvent]]:
    """The events outside the range that continue a visit across one of its edges.

    `ends` holds, per visitor, the time of their event nearest the edge (the first in the
    range when reading backwards from its start, the last when reading forwards from its
    end). Slices of growing length are read until every visit has met a gap over GAP.
    Returns each visitor's events found, nearest the range first.
    """
    found: dict[str, list[RawEvent]] = defaultdict(list)
    near = dict(ends)  # visitor -> the time of the visit's event nearest the next slice
    step = 2 * GAP
    while near:
        a, b = (edge, edge + step) if forwards else (edge - step, edge)
        per_visitor: dict[str, list[RawEvent]] = defaultdict(list)
        for event in _rows(site_id, a, b, sorted(near)):
            per_visitor[event.visitor].append(event)
        for visitor in list(near):
            events = per_visitor.get(visitor, [])
            for event in events if forwards else reversed(events):
                if abs(event.at - near[visitor]) > GAP:
                    del near[visitor]  # the gap ends the visit
                    break
                found[visitor].append(event)
                near[visitor] = event.at
            else:
                # Everything within GAP of the visit's nearest event is read: it ended. (An
                # event exactly GAP away still belongs to it: forwards, `b` is not read yet.)
                if (b - near[visitor] > GAP) if forwards else (near[visitor] - a >= GAP):
                    del near[visitor]
        edge = b if forwards else a
        step *= 2
    return found


def _pages(events: Iterable[RawEvent]) -> list[str]:
    """The page paths of the page views among `events`, in order."""
    return [event.page for event in events if event.kind == "pageview"]


def place_in_visits(
    site_id: int,
    events: list[RawEvent],
    start: datetime,
    end: datetime,
    before: bool = True,
    after: bool = True,
) -> None:
    """Give every event of [start, end) (in time order) its visit; `before` / `after`: read
    the events of visits that began before the range / end after it (for a visit's first
    event, and for its first and last page views)."""
    per_visitor: dict[str, list[RawEvent]] = defaultdict(list)
    for event in events:
        if event.has_visitor:
            per_visitor[event.visitor].append(event)
        else:
            page = event.page if event.kind == "pageview" else None
            event.visit = Visit(event, None, page, page, [event])
    earlier: dict[str, list[RawEvent]] = {}
    later: dict[str, list[RawEvent]] = {}
    if before:
        firsts = {v: evs[0].at for v, evs in per_visitor.items() if evs[0].at - start <= GAP}
        earlier = _outside(site_id, start, firsts, forwards=False)
    if after:
        lasts = {v: evs[-1].at for v, evs in per_visitor.items() if end - evs[-1].at <= GAP}
        later = _outside(site_id, end, lasts, forwards=True)
    for visitor, own in per_visitor.items():
        visits: list[Visit] = []
        previous: datetime | None = None
        for event in own:
            if previous is None or event.at - previous > GAP:
                visits.append(Visit(event, len(visits)))
            visits[-1].events.append(event)
            event.visit = visits[-1]
            previous = event.at
        head = earlier.get(visitor, [])[::-1]  # oldest first
        if head:
            visits[0].first = head[0]
            visits[0].started_before = True
        tail = later.get(visitor, [])
        for index, visit in enumerate(visits):
            whole = visit.events
            if index == 0:
                whole = head + whole
            if index == len(visits) - 1:
                whole = whole + tail
            pages = _pages(whole)
            visit.entry_page = pages[0] if pages else None
            visit.exit_page = pages[-1] if pages else None
            _measure(visit, whole)


def _measure(visit: Visit, whole: list[RawEvent]) -> None:
    """A visit's figures from all of its events read (oldest first)."""
    visit.event_count = len(whole)
    visit.browser_pageviews = sum(e.kind == "pageview" and e.from_browser for e in whole)
    visit.duration_us = (whole[-1].at - whole[0].at) // timedelta(microseconds=1)


def needs(dimensions: Iterable[str]) -> tuple[bool, bool]:
    """Whether reading these dimensions needs the events before the range and after it."""
    names = set(dimensions)
    # A visit's first (or last) page view may lie on either side of the range: the page
    # views of the range may all be before or after it, or there may be none in it.
    pages = bool(names & {"entry_page", "exit_page"})
    return bool(names & VISIT_DIMENSIONS) or pages, pages


def range_events(
    site_id: int,
    start: datetime,
    end: datetime,
    filters: Sequence[Filter] = (),
    dimensions: Iterable[str] = (),
    visits: bool = False,
    whole_visits: bool = False,
) -> list[RawEvent]:
    """The counted events of [start, end) that pass every filter, in time order, each in
    its visit when `visits` or a dimension or filter needs it; `whole_visits`: with the
    figures of each visit as a whole (its events before and after the range read too)."""
    events = _rows(site_id, start, end)
    wanted = [*dimensions, *(f.dimension for f in filters)]
    before, after = (True, True) if whole_visits else needs(wanted)
    if visits or before or after:
        place_in_visits(site_id, events, start, end, before, after)
    if not filters:
        return events
    return [event for event in events if matches(filters, event)]


def bucket_of(starts: list[datetime], moment: datetime) -> int:
    """The index of the chart bucket (by sorted UTC starts) that holds `moment`."""
    return bisect.bisect_right(starts, moment) - 1
