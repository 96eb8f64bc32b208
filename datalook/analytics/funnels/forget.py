"""Saved funnels' derived rows once events are deleted: as if only the events left had
ever been derived.

Called in the deleting transaction (analytics.forget), before the DELETE, while the doomed
events are still readable. In each current derivation of the site, the matched events of
the doomed events go; the visitors' attempts of the local days those events could touch
are derived again from the matched events left (changes.forget_changes: an attempt that
lost a step reaches less far, another of its day may become the best, and the links of
the visitor's other attempts follow); the excluded events without a visitor are taken out
of their quarter hours. A retired derivation (never read again, purged soon) just loses
the rows of the doomed events and their visitors' attempts.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.orm import Session

from ...models import Event
from ..visitor_ids import is_visitor
from .changes import VISITORS_PER_QUERY, forget_changes, quarter_hour, store_changes
from .clauses import any_step_clause
from .definition import FunnelDefinition, definition_from_json
from .derivation import cursor_name, site_days_zone
from .models import DerivedCursor, Funnel, FunnelAttempt, FunnelDerivation, FunnelEvent
from .models import FunnelExcluded as Excluded


def forget_deleted(session: Session, site_id: int, where: ColumnElement[bool]) -> None:
    """Correct every derivation of the site for the events `where` selects (about to be
    deleted, in the same transaction)."""
    doomed = select(Event.id).where(where)
    derivations = session.execute(
        select(
            FunnelDerivation.id,
            FunnelDerivation.days_tz,
            FunnelDerivation.retired_at,
            Funnel.definition,
        )
        .outerjoin(Funnel, Funnel.id == FunnelDerivation.funnel_id)
        .where(FunnelDerivation.site_id == site_id)
        .order_by(FunnelDerivation.id)
    ).all()
    for derivation_id, days_tz, retired_at, text in derivations:
        spans: dict[str, tuple[datetime, datetime]] = {
            visitor: (first, last)
            for visitor, first, last in session.execute(
                select(
                    FunnelEvent.visitor_id,
                    func.min(FunnelEvent.occurred_at),
                    func.max(FunnelEvent.occurred_at),
                )
                .where(FunnelEvent.derivation_id == derivation_id, FunnelEvent.event_id.in_(doomed))
                .group_by(FunnelEvent.visitor_id)
            )
        }
        session.execute(
            delete(FunnelEvent).where(
                FunnelEvent.derivation_id == derivation_id, FunnelEvent.event_id.in_(doomed)
            )
        )
        if retired_at is not None or text is None:
            _drop_attempts(session, derivation_id, list(spans))
            continue
        definition = definition_from_json(text)
        # A derivation made before zones were kept takes the site's from its next catch-up.
        tz_name = days_tz or site_days_zone(session, site_id)
        store_changes(session, forget_changes(session, derivation_id, definition, tz_name, spans))
        _forget_excluded(session, derivation_id, definition, where)


def _drop_attempts(session: Session, derivation_id: int, visitors: list[str]) -> None:
    """Delete the visitors' attempts in a retired derivation."""
    for offset in range(0, len(visitors), VISITORS_PER_QUERY):
        session.execute(
            delete(FunnelAttempt).where(
                FunnelAttempt.derivation_id == derivation_id,
                FunnelAttempt.visitor_id.in_(visitors[offset : offset + VISITORS_PER_QUERY]),
            )
        )


def _forget_excluded(
    session: Session, derivation_id: int, definition: FunnelDefinition, where: ColumnElement[bool]
) -> None:
    """Take the doomed events without a visitor that the derivation counted (up to its
    cursor, matching a step) out of their quarter hours; a bucket left at zero goes."""
    position = session.scalar(
        select(DerivedCursor.last_event_id).where(DerivedCursor.name == cursor_name(derivation_id))
    )
    taken: Counter[datetime] = Counter()
    for visitor, at, event_name, path, name, props in session.execute(
        select(
            Event.visitor_id,
            Event.occurred_at,
            Event.event_name,
            Event.page_path,
            Event.name,
            Event.properties,
        ).where(
            where,
            Event.id <= (position or 0),
            Event.counted(),
            Event.visitor_id.like("a:%"),  # narrows; is_visitor decides
            any_step_clause(definition),
        )
    ):
        if not is_visitor(visitor) and definition.step_mask(event_name, path, name, props):
            taken[quarter_hour(at)] += 1
    buckets = sorted(taken)
    for offset in range(0, len(buckets), VISITORS_PER_QUERY):
        chunk = buckets[offset : offset + VISITORS_PER_QUERY]
        mine = (Excluded.derivation_id == derivation_id, Excluded.bucket.in_(chunk))
        counted = dict(
            session.execute(
                select(Excluded.bucket, func.sum(Excluded.events))
                .where(*mine)
                .group_by(Excluded.bucket)
            ).all()
        )
        session.execute(delete(Excluded).where(*mine))
        left = [
            {"derivation_id": derivation_id, "bucket": bucket, "events": events}
            for bucket in chunk
            if (events := int(counted.get(bucket) or 0) - taken[bucket]) > 0
        ]
        if left:
            session.execute(insert(Excluded), left)
