"""Deleting events: erase one visitor (GDPR Art. 17), retention cut-offs, clearing test events.

Every deletion runs in one transaction with its audit entry (who, when, what kind, how many
events; never the events, never the visitor's id in clear), and calls every subscriber of
ON_EVENTS_DELETED inside that transaction, just before the events go (so a subscriber can
still read them), so what is derived from the events (the report rollups, sessions, saved
funnels) is corrected in the same commit as the deletion, or not at all.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from flask import current_app
from sqlalchemy import ColumnElement, Delete, delete, func, or_, select
from sqlalchemy.orm import Session

from .accounts import audit
from .analytics import cursors, identity
from .analytics import forget as derived
from .analytics.deletions import DeletedEvents, OnEventsDeleted
from .analytics.rollups import forget as rollups
from .analytics.store import invalidate as store
from .extensions import db
from .ingest.refusals import recorder_for
from .ingest.usage import counter_for
from .models import (
    RULE_FROM_TEST,
    AuditEntry,
    Event,
    RefusedRequest,
    Site,
    SuccessRule,
    VisitorLink,
)
from .sql.connections import write_lock

MAX_USER_ID = 256


# Subscribers (the contract: analytics.deletions): called as hook(session, deleted) inside
# the deleting transaction, before the DELETE; one that raises rolls the deletion back. The
# derivations under way are stopped, the report rollups take the events out, and the kind
# index, sessions and saved funnels' rows become what the events left derive, and the
# columnar copy's segments that held them stop being valid.
ON_EVENTS_DELETED: list[OnEventsDeleted] = [
    derived.stop_derivations,
    rollups.forget_deleted,
    derived.forget_deleted,
    store.forget_deleted,
]


class ErasureRefused(ValueError):
    """A deletion was refused; the message is for the person (page or CLI)."""


def _hour(moment: datetime | None) -> datetime | None:
    """Truncate a time to its UTC hour."""
    return moment.replace(minute=0, second=0, microsecond=0) if moment else None


def subject_digest(site_id: int, user_id: str) -> str:
    """A SHA-256 of the erased visitor: it proves an erasure on request, it names nobody."""
    return "sha256:" + hashlib.sha256(f"{site_id}:{user_id}".encode()).hexdigest()


def _delete(
    site: Site,
    condition: ColumnElement[bool],
    actor: audit.Actor,
    action: str,
    subject: str,
    visitor_id: str | None = None,
    only_test: bool = False,
    also: tuple[Delete, ...] = (),
    log_nothing: bool = True,
) -> int:
    """Delete the site's events matching `condition` with the audit entry and the hooks
    (and the statement `also`), in one transaction, queued with the other writers."""
    session = db.session()  # the request's (scoped) session itself
    session.rollback()  # start the transaction inside the writers' lock
    with write_lock(db.engine.dialect, db.engine.url.database):
        return _delete_locked(
            session,
            site,
            condition,
            actor,
            action,
            subject,
            visitor_id,
            only_test,
            also,
            log_nothing,
        )


def _delete_locked(
    session: Session,
    site: Site,
    condition: ColumnElement[bool],
    actor: audit.Actor,
    action: str,
    subject: str,
    visitor_id: str | None,
    only_test: bool,
    also: tuple[Delete, ...],
    log_nothing: bool,
) -> int:
    """The body of _delete, holding the writers' lock (no audit entry for a deletion that
    found nothing when `log_nothing` is false)."""
    try:
        for statement in also:
            session.execute(statement)
        where = (Event.site_id == site.id) & condition
        count, first, last = session.execute(
            select(func.count(), func.min(Event.occurred_at), func.max(Event.occurred_at)).where(
                where
            )
        ).one()
        deleted = DeletedEvents(
            site.id, count, _hour(first), _hour(last), visitor_id, only_test, where
        )
        if count:
            for hook in ON_EVENTS_DELETED:
                hook(session, deleted)
            session.execute(delete(Event).where(where))
            cursors.rewind_past_deleted(session)  # SQLite gives the ids of the newest again
        if count or log_nothing:
            audit.record(site, actor, action, subject, events_deleted=count, session=session)
        if action == "delete_before":
            audit.prune(session)  # the audit log's own retention runs with the events'
        session.flush()
        session.commit()
    except Exception:
        session.rollback()
        raise
    return count


def erase_visitor(site: Site, user_id: str, actor: audit.Actor) -> int:
    """Delete every event of one success_user_id (and refusal excerpts that name it)."""
    if not user_id or len(user_id) > MAX_USER_ID:
        raise ErasureRefused(f"Give the visitor's success_user_id (1 to {MAX_USER_ID} characters).")
    visitor_id = f"u:{user_id}"
    # Refusals this process still holds go to the table first, where the erasure finds them.
    recorder_for(current_app.extensions).flush(db.engine)
    # The refused-request log is short and bounded; its excerpts may quote the user id.
    escaped = user_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    quoting = delete(RefusedRequest).where(
        RefusedRequest.site_id == site.id,
        RefusedRequest.excerpt.like(f"%{escaped}%", escape="\\"),
    )
    # The anonymous events of the browsers linked to the user go too (those not moved to
    # the user yet as well), and so do the links: nothing is left that joins them.
    linked = list(
        db.session.scalars(
            select(VisitorLink.anonymous_id).where(
                VisitorLink.site_id == site.id, VisitorLink.user_id == user_id
            )
        )
    )
    condition = Event.visitor_id == visitor_id
    one_visitor: str | None = visitor_id
    if linked:
        anonymous = or_(
            *(identity.moved_by(site.id, anonymous_id, user_id) for anonymous_id in linked)
        )
        condition = or_(condition, anonymous)
        if db.session.scalar(select(func.count()).where(Event.site_id == site.id, anonymous)):
            one_visitor = None  # events of other visitor ids: their derived rows by time
    links = delete(VisitorLink).where(
        VisitorLink.site_id == site.id, VisitorLink.user_id == user_id
    )
    return _delete(
        site,
        condition,
        actor,
        "erase_visitor",
        subject_digest(site.id, user_id),
        visitor_id=one_visitor,
        also=(quoting, links),
        # An id without events erases nothing: no entry saying "0 events" of a made-up id.
        log_nothing=False,
    )


def delete_before(site: Site, cutoff: datetime, actor: audit.Actor) -> int:
    """Delete the site's events that occurred before `cutoff` (naive UTC): retention."""
    return _delete(
        site,
        Event.occurred_at < cutoff,
        actor,
        "delete_before",
        f"before {cutoff:%Y-%m-%d %H:%M} UTC",
    )


def clear_test_events(site: Site, actor: audit.Actor) -> int:
    """Delete every event sent with the site's test keys (no report counts them), and the
    success rule names only they used (which frees the test keys' cap of names)."""
    test_only = delete(SuccessRule).where(
        SuccessRule.site_id == site.id, SuccessRule.origin == RULE_FROM_TEST
    )
    return _delete(
        site,
        Event.is_test.is_(True),
        actor,
        "clear_test",
        "test events",
        only_test=True,
        also=(test_only,),
    )


def delete_site(site: Site, actor: audit.Actor) -> int:
    """Delete a site and everything of it (events, keys, members, invitations, summaries:
    the foreign keys cascade), in one transaction with its audit entry, which outlives the
    site (audit entries have no foreign key to sites). Return how many events went."""
    # What this process still holds for the site's keys goes to the tables first, so that
    # no later write names a key that is gone.
    counter_for(current_app.extensions).flush(db.engine)
    recorder_for(current_app.extensions).flush(db.engine)
    session = db.session()
    session.rollback()  # start the transaction inside the writers' lock
    with write_lock(db.engine.dialect, db.engine.url.database):
        try:
            count = int(
                session.scalar(
                    select(func.count()).select_from(Event).where(Event.site_id == site.id)
                )
                or 0
            )
            # Derivations under way may hold the site's events: they start over.
            derived.stop_derivations(session, DeletedEvents(site.id, count, None, None))
            audit.record(site, actor, "site_deleted", site.domain, events_deleted=count)
            session.execute(delete(Site).where(Site.id == site.id))
            cursors.rewind_past_deleted(session)
            session.commit()
        except Exception:
            session.rollback()
            raise
    session.expunge_all()
    return count


def recent_audit(site: Site, limit: int = 20) -> list[AuditEntry]:
    """The site's latest deletions, newest first."""
    return list(
        db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.site_id == site.id, AuditEntry.action.in_(audit.LONG_KEPT))
            .order_by(AuditEntry.id.desc())
            .limit(limit)
        )
    )
