"""Whether a range holds more than a number of events, read at most that number of rows.

The reports that read a range's events one by one (raw_events) cost as much as the range
holds; a page that must answer within a bound asks this first, along the
(site_id, occurred_at) index, and reads no more than `limit` + 1 rows to know.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from ...extensions import db
from ...models import Event


def holds_more_than(site_id: int, start: datetime, end: datetime, limit: int) -> bool:
    """Whether [start, end) holds more than `limit` counted events of the site."""
    rows = (
        select(Event.id)
        .where(
            Event.site_id == site_id,
            Event.occurred_at >= start,
            Event.occurred_at < end,
            Event.counted(),
        )
        .limit(limit + 1)
        .subquery()
    )
    return (db.session.scalar(select(func.count()).select_from(rows)) or 0) > limit
