"""Following the links of anonymous ids to users: a linked id's anonymous events count as
the user in every report, exactly as if they had been sent identified.

Ingestion only records a link (ingest/links.py, a row of visitor_links marked pending).
Here a pending link is applied: the events of its anonymous id that were sent without a
user id, and that do not count as the link's user yet, are stored again as that user's
(new rows with new ids, the old ones deleted), in one transaction. What was derived from
the old rows is taken out of every derived table by the subscribers that an erasure calls
(analytics.deletions: the report rollups and sketches, the kind index, the sessions, the
saved funnels), and the new rows are derived like any late event by the next fold and
catch-up: the reports become what a derivation from scratch with the links would give. The
new rows keep every column but the visitor, and their receipt time is the rewrite's (the
fold's reading of ids in commit order relies on it).

A link is applied once it is LINK_GRACE old: a browser event that looked for a link of its
id just before the link was made is stored by then, and is moved with the others.
Identified events keep their own user: a link moves only anonymous ones.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    ColumnElement,
    Table,
    delete,
    func,
    insert,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session

from ..models import Event, VisitorLink, utcnow
from ..sql.connections import write_lock
from . import forget as derived
from .deletions import DeletedEvents, OnEventsDeleted
from .rollups import forget as rollups
from .store import invalidate as store

log = logging.getLogger(__name__)

LINK_GRACE = timedelta(seconds=2)
# The links waiting to be applied, written as the bare term of the partial index
# ix_visitor_links_pending (WHERE pending): SQLite uses a partial index only for a query
# that names its term, and SQLAlchemy writes a boolean test as `pending = 1` or `IS 1`,
# which scanned every link (about 130 ms at 750k links, paid twice by each report read).
PENDING: ColumnElement[bool] = literal_column(f"{VisitorLink.__tablename__}.pending")
# Links applied per call at most: the rest wait for the next call (the fold process's tick).
LINKS_PER_CALL = 200
_events = cast(Table, Event.__table__)
# The subscribers an erasure calls (erasure.ON_EVENTS_DELETED), in its order: a moved
# event is taken out of what is derived exactly as a deleted one.
_TAKE_OUT: tuple[OnEventsDeleted, ...] = (
    derived.stop_derivations,
    rollups.forget_deleted,
    derived.forget_deleted,
    store.forget_deleted,
)


def _hour(moment: datetime) -> datetime:
    """Truncate a time to its UTC hour."""
    return moment.replace(minute=0, second=0, microsecond=0)


def moved_by(site_id: int, anonymous_id: str, user_id: str):
    """SQL: the events a link of `anonymous_id` to `user_id` moves (anonymous ones of that
    id that do not count as the user yet)."""
    return (
        (Event.site_id == site_id)
        & (Event.anonymous_id == anonymous_id)
        & Event.from_browser.is_(True)
        & Event.success_user_id.is_(None)
        & (Event.visitor_id != f"u:{user_id}")
    )


def apply_pending(
    session: Session, now: datetime | None = None, limit: int = LINKS_PER_CALL
) -> int:
    """Apply the pending links made at least LINK_GRACE before `now`, oldest first, each in
    its own transaction; how many events moved. A link that fails is logged and left
    pending for the next call."""
    now = now or utcnow()
    pending = session.execute(
        select(VisitorLink.site_id, VisitorLink.anonymous_id, VisitorLink.created_at)
        .where(PENDING, VisitorLink.created_at <= now - LINK_GRACE)
        .order_by(VisitorLink.created_at)
        .limit(limit)
    ).all()
    if not pending:  # the common case: the caller's transaction and objects stay as they are
        return 0
    session.rollback()  # writers take the lock before they begin (see erasure)
    moved = 0
    bind = session.get_bind()
    for site_id, anonymous_id, made_at in pending:
        with write_lock(bind.dialect, bind.engine.url.database):
            try:
                moved += _apply(session, site_id, anonymous_id, made_at, utcnow())
                session.commit()
            except Exception:
                session.rollback()
                log.exception("identity: applying a link failed; it stays pending")
    return moved


def _apply(session: Session, site_id: int, anonymous_id: str, made_at: datetime, now) -> int:
    """Move the events one link moves, in the caller's transaction; how many."""
    link = session.execute(
        select(VisitorLink.user_id, VisitorLink.created_at).where(
            VisitorLink.site_id == site_id, VisitorLink.anonymous_id == anonymous_id
        )
    ).first()
    if link is None:  # erased meanwhile
        return 0
    user_id, created_at = link
    where = moved_by(site_id, anonymous_id, user_id)
    rows = session.execute(select(_events).where(where)).mappings().all()
    if rows:
        ids = [row["id"] for row in rows]
        doomed = Event.id.in_(ids)
        olds = {row["visitor_id"] for row in rows}
        # All of an anonymous visitor's events are moved together: its derived rows can go
        # by its id. A user's (a browser's link overridden by a server's) go by their time.
        (old,) = olds if len(olds) == 1 else (None,)
        one = old if old is not None and not old.startswith("u:") else None
        taken = DeletedEvents(
            site_id,
            len(rows),
            _hour(min(row["occurred_at"] for row in rows)),
            _hour(max(row["occurred_at"] for row in rows)),
            one,
            False,
            doomed,
        )
        for hook in _TAKE_OUT:
            hook(session, taken)
        # Their event ids go to the new rows (a retry stays a duplicate).
        session.execute(update(Event).where(doomed).values(event_id=None))
        visitor = f"u:{user_id}"
        copies = [
            {
                **{k: v for k, v in row.items() if k != "id"},
                "visitor_id": visitor,
                "received_at": now,
            }
            for row in rows
        ]
        session.execute(insert(_events), copies)
        session.execute(delete(Event).where(doomed))
    # Done unless the link changed meanwhile (a server's took its place: it is applied next).
    session.execute(
        update(VisitorLink)
        .where(
            VisitorLink.site_id == site_id,
            VisitorLink.anonymous_id == anonymous_id,
            VisitorLink.created_at == created_at,
        )
        .values(pending=False)
    )
    return len(rows)


def pending_links(session: Session) -> int:
    """How many links wait to be applied."""
    return session.scalar(select(func.count()).select_from(VisitorLink).where(PENDING)) or 0
