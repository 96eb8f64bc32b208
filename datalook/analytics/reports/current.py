"""Current visitors: the distinct visitors with an event in the last few minutes.

A bounded read: the events of the window along the (site_id, occurred_at) index, at most
CAP of them, so a burst costs at most that many rows (the figure then reads "CAP+").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from ...extensions import db
from ...models import Event

WINDOW = timedelta(minutes=5)
CAP = 10_000


@dataclass(frozen=True)
class CurrentVisitors:
    """How many visitors were seen in the window, and whether the cap cut the count."""

    count: int
    capped: bool


def current_visitors(site_id: int, now_utc: datetime) -> CurrentVisitors:
    """Distinct visitors (never per-event anonymous ids, never test events) with an event
    in the WINDOW before `now_utc`."""
    recent = (
        select(Event.visitor_id)
        .where(
            Event.site_id == site_id,
            Event.occurred_at >= now_utc - WINDOW,
            Event.occurred_at <= now_utc,
            Event.counted(),
        )
        .limit(CAP)
        .subquery()
    )
    row = db.session.execute(
        select(
            func.count(),
            func.count(func.distinct(recent.c.visitor_id)).filter(
                ~recent.c.visitor_id.startswith("a:")
            ),
        ).select_from(recent)
    ).one()
    return CurrentVisitors(count=int(row[1]), capped=int(row[0]) >= CAP)
