"""When the store's segments stop being valid: every change to the events that could change
a segment's rows deletes its row, in the transaction that makes the change (or, for new
events, in the transaction that moves the store's cursor past them).

A segment's rows are the events of its span, each with its whole visit: an event changes
them when it lies in the span or joins one of the segment's edges (store.edges). So:

- new events (late ones, and the copies an identity link stores again) are seen by the
  store's cursor over events.id (CURSOR, a derived cursor: ``catch_up``): each deletes
  the segments of its site whose span holds its time, and those with an edge of its
  visitor that it could join;
- deleted events (an erasure, a retention cut-off, an identity link's moved events: a
  subscriber of ON_EVENTS_DELETED, ``forget_deleted``) delete, more broadly, the
  segments whose [lo - GAP, hi + GAP] meets their hours (lo and hi bound every event a
  segment's build read: its span and all of its visits);
- a rebuild drops all of the site's (``drop_site``); deleting a site cascades.

Every writer here first moves the cursor's version (under the writers' lock, and on
PostgreSQL the cursor's row lock): a build that read the events before it then stores
nothing (store.build claims the version it read), so no stale segment is ever stored.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from ...models import Event
from .. import cursors
from ..deletions import DeletedEvents
from ..sessions import GAP
from .edges import Seen, tokens_joined
from .models import StoreSegment

CURSOR = "analytics-store"
# New events closer than this are merged into one interval of times (fewer DELETEs; a
# segment between two of them is dropped too: conservative, never wrong).
_CLUSTER = timedelta(minutes=10)
_HOUR = timedelta(hours=1)

New = dict[int, list[Seen]]


def reaching(site_id: int, first: datetime, last: datetime) -> ColumnElement[bool]:
    """SQL: the site's segments whose rows an event between `first` and `last` could
    change (its [lo - GAP, hi + GAP] meets [first, last])."""
    return (
        (StoreSegment.site_id == site_id)
        & (StoreSegment.lo <= last + GAP)
        & (StoreSegment.hi >= first - GAP)
    )


def clustered(times: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted times as intervals [first, last] covering them all."""
    intervals: list[tuple[datetime, datetime]] = []
    for moment in sorted(times):
        if intervals and moment - intervals[-1][1] <= _CLUSTER:
            intervals[-1] = (intervals[-1][0], moment)
        else:
            intervals.append((moment, moment))
    return intervals


def derive_new(session: Session, after: int, up_to: int) -> New:
    """The counted events after the cursor up to `up_to`, per site (test events are in
    no segment)."""
    found: New = defaultdict(list)
    rows = session.execute(
        select(Event.site_id, Event.visitor_id, Event.occurred_at).where(
            Event.id > after, Event.id <= up_to, Event.counted()
        )
    )
    for site_id, visitor, moment in rows:
        found[site_id].append(Seen(visitor, moment))
    return found


def store_new(session: Session, new: New) -> None:
    """Delete the segments the new events could change (in the cursor's transaction)."""
    for site_id, events in new.items():
        for first, last in clustered([event.at for event in events]):
            session.execute(
                delete(StoreSegment).where(
                    StoreSegment.site_id == site_id,
                    StoreSegment.span_start <= last,
                    StoreSegment.span_end > first,
                )
            )
        drop(session, sorted(tokens_joined(session, site_id, events)))


def drop(session: Session, tokens: list[str]) -> None:
    """Delete these segments (in the caller's transaction)."""
    for offset in range(0, len(tokens), 500):
        chunk = tokens[offset : offset + 500]
        session.execute(delete(StoreSegment).where(StoreSegment.token.in_(chunk)))


def catch_up(session: Session, seconds: float | None = None) -> int:
    """Move the store's cursor over the new events, deleting the segments they could
    change; within `seconds` when given. How many events it passed."""
    return cursors.derive_in_two_phases(session, CURSOR, derive_new, store_new, seconds=seconds)


def forget_deleted(session: Session, deleted: DeletedEvents) -> None:
    """Delete the segments of the events about to be deleted (a subscriber of
    ON_EVENTS_DELETED: in the deleting transaction)."""
    if deleted.only_test:
        return  # test events are in no segment
    cursors.touch(session, CURSOR)  # first: a build under way stores nothing
    if deleted.first_hour is None or deleted.last_hour is None:
        session.execute(delete(StoreSegment).where(StoreSegment.site_id == deleted.site_id))
        return
    last = deleted.last_hour + _HOUR
    session.execute(delete(StoreSegment).where(reaching(deleted.site_id, deleted.first_hour, last)))


def drop_site(session: Session, site_id: int) -> None:
    """Delete every segment of a site, in the caller's write transaction."""
    cursors.touch(session, CURSOR)
    session.execute(delete(StoreSegment).where(StoreSegment.site_id == site_id))
