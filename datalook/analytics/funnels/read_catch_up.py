"""The one place a funnel report may write: catching up what it reads, within bounds."""

# A report reads derived rows (a saved funnel's derivation, the kind index) that the fold
# process keeps nearly caught up; the few events it has not derived yet a report derives
# itself, here and nowhere else, before it reads. Everything after is reads only.

from __future__ import annotations

import logging
from typing import NamedTuple

from sqlalchemy.orm import Session

from .. import backlog, identity, kinds
from ..backlog import Freshness
from . import derivation
from .definition import FunnelDefinition
from .models import Funnel

log = logging.getLogger(__name__)

# A report catches a saved funnel up itself while it is at most this many events behind
# (a second or two of derivation). Further behind (a new or edited funnel on a large site,
# which the fold process derives in bounded steps), it is computed from the events like an
# unsaved funnel: same figures, without making the page wait minutes.
REPORT_CATCH_UP_LIMIT = 20_000


class CaughtUp(NamedTuple):
    """What a funnel report reads, now caught up: a saved funnel's current derivation, else
    the kind index (when it answers the funnel), else (neither) the events; and how current
    that is."""

    freshness: Freshness
    derivation_id: int | None = None
    kind_index: bool = False


def catch_up_for_read(
    session: Session,
    definition: FunnelDefinition,
    funnel: Funnel | None = None,
    tz_name: str | None = None,
    deadline: float | None = None,
) -> CaughtUp:
    """Catch up what a report of `definition` will read, as far as a read may, and say what.

    A saved `funnel` (as the caller read it; not strict) over a range in the zone `tz_name`
    is read from its current derivation, which follows the site's zone first and is then
    derived up to the newest safe event, unless it is more than REPORT_CATCH_UP_LIMIT
    events behind, its days follow another zone than the range (the site's zone changed a
    moment ago) or it derives another definition (edited meanwhile). Otherwise the funnel
    is read like an unsaved one: from the kind index when the index can answer it at all,
    caught up unless it is too far behind (kinds.ready); else from the events.

    With `deadline` (a report's budget), the catch-up begins no batch past it: the report
    then reads the derivation or the index short of the newest events, as its freshness
    says. A failing catch-up is logged: the derivation is read as it is, the index not at
    all (the events are).
    """
    apply_links(session)
    newest = backlog.newest_id(session)
    if funnel is not None and tz_name is not None and definition.mode != "strict":
        funnel_id, text = funnel.id, funnel.definition  # as the caller read them
        found = derivation.follow_site_zone(session, funnel_id)
        if (
            found is not None
            and found.days_tz == tz_name
            and found.definition == text
            and derivation.backlog(session, found.id) <= REPORT_CATCH_UP_LIMIT
        ):
            finished = True
            try:
                derivation.catch_up_derivation(session, found.id, tz_name, deadline=deadline)
            except Exception:  # the report must not fail because the catch-up did
                session.rollback()
                log.exception("analytics: catching a funnel up before its report failed")
                finished = False
            finished = finished and not backlog.passed(deadline)
            position = derivation.position(session, found.id)
            return CaughtUp(
                derivation_id=found.id,
                freshness=backlog.measure(session, newest, [position], finished),
            )
    if kinds.answers(definition):
        try:
            ready = kinds.ready(session, deadline)
        except Exception:  # read the events instead
            session.rollback()
            log.exception("analytics: catching the kind index up before a report failed")
            ready = False
        if ready:
            finished = not backlog.passed(deadline)
            position = kinds.position(session)
            return CaughtUp(
                kind_index=True,
                freshness=backlog.measure(session, newest, [position], finished),
            )
    return CaughtUp(freshness=backlog.from_events(session, newest))


def apply_links(session: Session) -> None:
    """Apply the links made since the fold process last applied them (a few), so that a
    report counts a linked id as its user; a failing link is logged, not raised."""
    try:
        identity.apply_pending(session)
    except Exception:  # the report must not fail because a link did
        session.rollback()
        log.exception("analytics: applying links before a funnel report failed")
