"""Filters on the funnels and journeys: they apply to a visit, not to single events.

A visit (raw_events.Visit: a visitor's events with no gap over 30 minutes) passes the
filters when one of its events in the range passes every one (for a visit dimension such
as source, every event of the visit has the visit's value, so this is the visit's value). An
event without a visitor is a visit of its own. A funnel's attempt counts when the visit of
its step-1 event passes; a journey's session when it does (funnels.filtered, journeys).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from ...acquisition.dimensions import Filter
from ..query import ReportQuery
from .raw_events import RawEvent, matches, range_events


def _passing(events: list[RawEvent], filters: Sequence[Filter]) -> set[int]:
    """The ids (id()) of the visits with an event that passes every filter."""
    return {id(event.visit) for event in events if matches(filters, event)}


def passing_events(
    site_id: int, start: datetime, end: datetime, filters: Sequence[Filter]
) -> set[int]:
    """The ids of the counted events of [start, end) whose visit passes the filters."""
    events = range_events(site_id, start, end, visits=True, whole_visits=True)
    passing = _passing(events, filters)
    return {event.id for event in events if id(event.visit) in passing}


def passing_sessions(
    site_id: int, start: datetime, end: datetime, filters: Sequence[Filter]
) -> set[tuple[str, datetime]]:
    """(visitor id, start) of the visits of a visitor that start in [start, end) and pass
    the filters: the keys of their derived sessions (analytics.sessions)."""
    events = range_events(site_id, start, end, visits=True, whole_visits=True)
    passing = _passing(events, filters)
    found: set[tuple[str, datetime]] = set()
    for event in events:
        visit = event.visit
        if visit is None or visit.number is None or visit.started_before:
            continue
        if id(visit) in passing:
            found.add((event.visitor, visit.first.at))
    return found


def kept_sessions(query: ReportQuery) -> set[tuple[str, datetime]] | None:
    """The sessions a journeys query with filters counts (None: no filters, all)."""
    if not query.filters:
        return None
    rng = query.range
    return passing_sessions(query.site_id, rng.start_utc, rng.end_utc, query.filters)
