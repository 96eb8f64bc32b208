"""Rebuild everything derived from a site's events from the events themselves: the repair.

`flask analytics rebuild --site D` (or `--all`) leaves each table derived from the site's
events as a derivation from scratch would, whatever it held (rows of events deleted long
ago, or anything else):

- the report summaries (rollups and visitor sketches): recounted, then replaced in one
  transaction (analytics.rollups.fold.rebuild_site);
- the kind index and the sessions: window by window of about WINDOW_EVENTS events (in
  time order), each window's rows replaced in one short transaction under the writers'
  lock that reads its events up to the cursor's position there (a catch-up meanwhile
  derives what comes after, as usual); then the kinds left without events go;
- each saved funnel's rows: a new derivation, as an edit starts one, derived up to the
  newest event; the old one's rows are purged in short batches;
- the columnar copy's segments (analytics.store): dropped first; the fold builds them again;
  the journeys' day files of the sessions go stale with the sessions' days re-derived
  (sessions.rederive moves their versions on) and are built again by the fold too.

It is safe while events arrive and reports are read: a report sees each window either as
it was or as rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from ..models import Event
from ..sql.connections import write_lock
from . import cursors, kinds, sessions, settled
from .funnels import derivation as funnel_derivations
from .rollups import fold as summaries
from .store import invalidate as store

# Events per window of the kind index and the sessions: reading, deriving and writing one
# holds the writers' lock for about 0.1 to 0.3 s.
WINDOW_EVENTS = 5_000


class Rebuilt(NamedTuple):
    """What a rebuild went through: the events counted in the summaries, the events filed
    in the kind index, the sessions stored, the events saved funnels derived."""

    events: int
    filed: int
    sessions: int
    derived: int


def rebuild_site(session: Session, engine: Engine, instance_path: str, site_id: int) -> Rebuilt:
    """Rebuild every table derived from the site's events (see the module's docstring)."""
    cursors.ensure(session, store.CURSOR)
    with _held(session, store.CURSOR):
        store.drop_site(session, site_id)  # the fold builds the segments again
    summaries.catch_up(engine, instance_path)
    events = summaries.rebuild_site(engine, instance_path, site_id)
    filed = _by_window(session, site_id, kinds.CURSOR, kinds.refile)
    with _held(session, kinds.CURSOR):
        kinds.forget_unused(session, site_id)
        settled.bump(session.connection())  # unsaved funnels keep what they read of the past
    stored = _by_window(session, site_id, sessions.CURSOR, sessions.rederive)
    with _held(session, sessions.CURSOR):
        settled.bump(session.connection(), sessions.GENERATION)  # journeys keep past counts
    derived = funnel_derivations.rederive_site(session, site_id)
    return Rebuilt(events, filed, stored, derived)


Window = Callable[[Session, int, datetime | None, datetime | None, int], int]


def _by_window(session: Session, site_id: int, cursor: str, rebuild: Window) -> int:
    """Run `rebuild(session, site, start, end, position)` over every window of the site's
    events, each in its own transaction holding the cursor; the sum of what it returns."""
    cursors.ensure(session, cursor)
    total = 0
    for start, end in windows(session, site_id):
        with _held(session, cursor) as position:
            total += rebuild(session, site_id, start, end, position)
    return total


def windows(session: Session, site_id: int) -> Iterator[tuple[datetime | None, datetime | None]]:
    """Consecutive [start, end) spans of time (None: unbounded) that together cover all
    time, each holding about WINDOW_EVENTS of the site's events."""
    start: datetime | None = None
    while True:
        query = select(Event.occurred_at).where(Event.site_id == site_id)
        if start is not None:
            query = query.where(Event.occurred_at > start)
        end = session.scalar(query.order_by(Event.occurred_at).offset(WINDOW_EVENTS).limit(1))
        session.rollback()
        yield start, end
        if end is None:
            return
        start = end


@contextmanager
def _held(session: Session, name: str) -> Iterator[int]:
    """A write transaction under the writers' lock that holds a derived cursor (its
    position is the value of the `with`): committed at the end, rolled back on error."""
    engine = session.get_bind().engine  # the bind is an Engine here; .engine says so to mypy
    session.rollback()  # begin the write inside the writers' lock
    with write_lock(engine.dialect, engine.url.database):
        try:
            yield cursors.hold(session, name)
            session.commit()
        except BaseException:
            session.rollback()
            raise
