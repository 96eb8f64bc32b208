"""stats.json's visit figures of a range, read from the derived sessions (analytics.sessions).

A visit is a session that holds at least one page view sent by a browser; it belongs to the
range in which it started (as in the journeys report). Per range: the visits, their browser
page views, the bounces (visits whose one event is their page view: any other event of the
visitor within the visit, a server success too, makes it no bounce) and the sum of their
durations (last event - first event, in microseconds).

The part of the range before sessions.boundary() changes only with a bump of the sessions'
generation, so its sums are read once per process and kept under that generation; the fresh
part (a day at most) is read each time. Both read one covering index.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from .. import settled
from ..funnels.models import VisitorSession
from ..ranges import DateRange
from ..sessions import GENERATION, boundary
from .model import Totals

_cache = settled.AppCache("datalook_visits_cache", 64)


@dataclass(frozen=True)
class VisitSums:
    """The visit figures of a span, as sums (Totals' fields of the same names)."""

    visits: int = 0
    visit_pageviews: int = 0
    bounces: int = 0
    visit_duration_us: int = 0

    def __add__(self, other: VisitSums) -> VisitSums:
        return VisitSums(
            self.visits + other.visits,
            self.visit_pageviews + other.visit_pageviews,
            self.bounces + other.bounces,
            self.visit_duration_us + other.visit_duration_us,
        )

    def apply(self, totals: Totals) -> Totals:
        """The totals with these visit figures."""
        return replace(
            totals,
            visits=self.visits,
            visit_pageviews=self.visit_pageviews,
            bounces=self.bounces,
            visit_duration_us=self.visit_duration_us,
        )


def _read(session: Session, site_id: int, start, end) -> VisitSums:
    """The sums of the visits that started in [start, end)."""
    t = VisitorSession.__table__.c
    row = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(t.browser_pageviews), 0),
            func.coalesce(func.sum(case((t.events == 1, 1), else_=0)), 0),
            func.coalesce(func.sum(t.duration_us), 0),
        ).where(
            t.site_id == site_id,
            t.started_at >= start,
            t.started_at < end,
            t.browser_pageviews > 0,
        )
    ).one()
    return VisitSums(*(int(value) for value in row))


def visit_sums(session: Session, site_id: int, rng: DateRange) -> VisitSums:
    """The visit figures of a range (the sessions must be caught up first)."""
    cut = min(max(boundary(), rng.start_utc), rng.end_utc)
    old = VisitSums()
    if cut > rng.start_utc:
        key = ("visits", site_id, settled.generation(session, GENERATION), rng.start_utc, cut)
        found = _cache.get(key)
        if found is None:
            found = _read(session, site_id, rng.start_utc, cut)
            _cache.put(key, found)
        old = found
    return old + _read(session, site_id, cut, rng.end_utc)
