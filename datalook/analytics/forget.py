"""What the funnels and journeys derive per visitor (sessions, saved funnels' matched events
and attempts) goes with the events it came from: an erasure leaves no row naming the
visitor, a retention cut-off none older than the events kept. Saved funnels' rows are
corrected in every derivation of the site, retired ones too (they may wait a while to be
purged).

A subscriber of erasure.ON_EVENTS_DELETED (the contract: analytics.deletions); the report
rollups have their own (analytics.rollups.forget)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from . import cursors, kinds, sessions, settled
from .deletions import DeletedEvents
from .funnels.models import FunnelAttempt, FunnelDerivation, FunnelEvent, VisitorSession


def forget_deleted(session: Session, deleted: DeletedEvents) -> None:
    """Delete the derived rows of events that are about to be deleted (same transaction)."""
    if deleted.only_test:  # test events are never derived from
        return
    # A derivation computed from these events before this transaction must not store it;
    # the journeys' kept counts of earlier sessions are dropped with the sessions.
    cursors.invalidate(session)
    settled.bump(session.connection(), sessions.GENERATION)
    if deleted.where is not None:
        kinds.forget_deleted(session, deleted.where)
    derivations = (
        select(FunnelDerivation.id)
        .where(FunnelDerivation.site_id == deleted.site_id)
        .scalar_subquery()
    )
    if deleted.visitor_id is not None:
        visitor = deleted.visitor_id
        session.execute(
            delete(VisitorSession).where(
                VisitorSession.site_id == deleted.site_id, VisitorSession.visitor_id == visitor
            )
        )
        for table in (FunnelEvent, FunnelAttempt):
            session.execute(
                delete(table).where(
                    table.derivation_id.in_(derivations), table.visitor_id == visitor
                )
            )
    elif deleted.last_hour is not None:
        # A retention cut-off: everything derived from before the last deleted hour's end.
        until = deleted.last_hour.replace(minute=59, second=59, microsecond=999999)
        session.execute(
            delete(VisitorSession).where(
                VisitorSession.site_id == deleted.site_id, VisitorSession.ended_at <= until
            )
        )
        session.execute(
            delete(FunnelEvent).where(
                FunnelEvent.derivation_id.in_(derivations), FunnelEvent.occurred_at <= until
            )
        )
        session.execute(
            delete(FunnelAttempt).where(
                FunnelAttempt.derivation_id.in_(derivations), FunnelAttempt.started_at <= until
            )
        )
