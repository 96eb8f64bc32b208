"""The settled past of the summaries, and a per-process cache of what is read from it.

Events arrive at most 7 days late (the API refuses an older `timestamp`), so the rollups
and sketches of buckets that end before ``boundary()`` (a UTC Monday at least 8 days back)
no longer change with ordinary ingestion. They still change when a fold adds older events
(the demo seeder, a long-stopped fold catching up), when a rebuild replaces a site's
summaries, and when events are deleted (erasure, retention): every such write bumps one
generation counter in the database (``bump``), in the same transaction. A report reads the
counter once and keys what it caches by it, so a cached figure is never stale: after a
bump nothing cached before it is found again.

What is cached is small (merged sketches and per-bucket figures of long ranges); each
process keeps at most MAX_ENTRIES and drops the oldest first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from ..models import utcnow
from ..sql.connections import dialect_insert
from .rollups.models import SummaryCursor

GENERATION = "settled"  # the analytics_cursor row whose version is the generation
LATE = timedelta(days=8)  # longer than the API's 7 days back, with a day to spare
MAX_ENTRIES = 2048  # a merged sketch is up to 16 KB: at most about 32 MB per process


def boundary(now: datetime | None = None) -> datetime:
    """The UTC Monday midnight before which buckets are settled (at least LATE ago).

    A Monday so that every stored span (hour, day, week from Monday) ends on or starts at
    it: a range splits there into a settled part and a fresh one.
    """
    moment = (now or utcnow()) - LATE
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def touches_settled(first_hour: datetime | None, now: datetime | None = None) -> bool:
    """True if a write to the summaries from `first_hour` on may change settled buckets
    (the week holding it starts before the boundary)."""
    return first_hour is not None and first_hour < boundary(now) + timedelta(days=7)


def bump(connection, name: str = GENERATION) -> None:
    """Move the generation on (inside the transaction that changes settled summaries);
    `name` picks another generation (the sessions' one: see journeys)."""
    statement = dialect_insert(SummaryCursor.__table__, connection.dialect.name)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"version": SummaryCursor.__table__.c.version + 1, "updated_at": utcnow()},
        ),
        {"name": name, "last_event_id": 0, "version": 1, "updated_at": utcnow()},
    )


def generation(session, name: str = GENERATION) -> int:
    """The current generation (0 before the first bump)."""
    found = session.scalar(select(SummaryCursor.version).where(SummaryCursor.name == name))
    return int(found or 0)


class _Cache:
    """A bounded mapping, oldest entries dropped first; safe across threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[tuple, Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> Any:
        """The value of `key`, or None."""
        with self.lock:
            found = self.items.get(key)
            if found is not None:
                self.items.move_to_end(key)
            return found

    def put(self, key: tuple, value: Any) -> None:
        """Keep `value` under `key`."""
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)


class AppCache:
    """A cache of the current app (one per app: tests run many apps, on many databases,
    in one process)."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size

    def _mine(self) -> _Cache:
        """This app's cache, made on first use."""
        from flask import current_app

        found = current_app.extensions.get(self.name)
        if found is None:
            found = current_app.extensions.setdefault(self.name, _Cache(self.size))
        return found

    def get(self, key: tuple) -> Any:
        """The value of `key` in the app's cache, or None."""
        return self._mine().get(key)

    def put(self, key: tuple, value: Any) -> None:
        """Keep `value` under `key` in the app's cache."""
        self._mine().put(key, value)


cache = AppCache("datalook_settled_cache", MAX_ENTRIES)
