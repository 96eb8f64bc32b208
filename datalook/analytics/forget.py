"""What the funnels and journeys derive per visitor (the kind index, sessions, saved
funnels' matched events, attempts and excluded counts) follows the events it came from:
after an erasure or a retention cut-off it is what a derivation of the events left would
be, in the deleting transaction. An erasure leaves no row naming the visitor (one
visitor's rows are deleted: nothing else depended on them); a cut-off derives again what
the deleted events touched (the sessions across it, the attempts of their visitors' days
and the counts of their quarter hours). Saved funnels' rows are corrected in every
derivation of the site, retired ones too (they may wait a while to be purged).

Two subscribers of erasure.ON_EVENTS_DELETED (the contract: analytics.deletions), around
the report rollups' own (analytics.rollups.forget)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from . import cursors, kinds, sessions, settled
from .deletions import DeletedEvents
from .funnels import forget as funnels
from .funnels.models import FunnelAttempt, FunnelDerivation, FunnelEvent, VisitorSession
from .store import session_days


def stop_derivations(session: Session, deleted: DeletedEvents) -> None:
    """Make every derivation computed from these events before this transaction start
    over instead of storing it: the first subscriber, so that on PostgreSQL the deleting
    transaction locks the derived cursors' rows before the rollups' cursor and the
    generation rows, in the order every catch-up and fold takes them (no deadlock)."""
    if not deleted.only_test:  # test events are never derived from
        cursors.invalidate(session)


def forget_deleted(session: Session, deleted: DeletedEvents) -> None:
    """Correct the derived rows of events that are about to be deleted (same transaction;
    after stop_derivations)."""
    if deleted.only_test:
        return
    # The journeys' kept counts of earlier sessions are dropped with the sessions.
    settled.bump(session.connection(), sessions.GENERATION)
    if deleted.where is not None:
        kinds.forget_deleted(session, deleted.where, deleted.visitor_id is not None)
    if deleted.visitor_id is not None:
        visitor = deleted.visitor_id
        derivations = (
            select(FunnelDerivation.id)
            .where(FunnelDerivation.site_id == deleted.site_id)
            .scalar_subquery()
        )
        mine = (VisitorSession.site_id == deleted.site_id) & (VisitorSession.visitor_id == visitor)
        # The days of the visitor's sessions change: their files of the copy are stale.
        starts = session.scalars(select(VisitorSession.started_at).where(mine))
        session_days.bump(session.connection(), deleted.site_id, list(starts))
        session.execute(delete(VisitorSession).where(mine))
        for table in (FunnelEvent, FunnelAttempt):
            session.execute(
                delete(table).where(
                    table.derivation_id.in_(derivations), table.visitor_id == visitor
                )
            )
    elif deleted.where is not None and deleted.first_hour and deleted.last_hour:
        until = deleted.last_hour + timedelta(hours=1)
        sessions.forget_deleted(session, deleted.site_id, deleted.where, deleted.first_hour, until)
        funnels.forget_deleted(session, deleted.site_id, deleted.where)
