"""Keep every table derived from the events caught up: the kind index, sessions and saved
funnels.

Reports catch up by themselves before reading; the fold process (`flask analytics fold`),
`flask funnels catch-up` and `flask demo seed` call this so that the work a page view
pays stays small. It also purges the rows of retired funnel derivations (deleted or
edited funnels).

The fold process bounds each call (`seconds`): a first derivation of a funnel on a large
site takes many minutes, and the summaries must keep folding meanwhile, so the rest is
left for the next tick (which comes sooner while work is left, see `derivation_pending`).
"""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..models import Event
from . import cursors, kinds, sessions
from .funnels import derivation as funnel_derivations
from .funnels import read_catch_up, staging
from .funnels.models import DerivedCursor, Funnel, FunnelDerivation

# The fold process's budget per call, for each kind of derived table (the sessions, the
# saved funnels together, the purge): at least one batch of each, then no new batch past it.
TICK_SECONDS = 2.0
PURGED = "retired rows purged"


def catch_up_all(session: Session, seconds: float | None = None) -> dict[str, int]:
    """File events in the kind index, derive sessions, then each saved funnel, then purge
    retired derivations.

    Without `seconds`, up to the newest safe event and until nothing retired is left.
    With it, each of the four stops at its first batch past that many seconds (every
    funnel still gets one batch: the funnels most caught up go first, so that they stay
    current while a first derivation takes its time). Returns the events passed over, by
    "kinds", "sessions" and "funnel <id>" (strict funnels derive nothing: their reports read the
    events), and the derived rows purged (PURGED).
    """
    passed = {
        "kinds": kinds.catch_up(session, seconds),
        "sessions": _catch_up_sessions(session, seconds),
    }
    deadline = None if seconds is None else time.monotonic() + seconds
    for funnel_id, _ in _funnels_most_caught_up_first(session):
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        passed[f"funnel {funnel_id}"] = staging.catch_up_funnel(session, funnel_id, left)
    staging.abandon_stale(session)  # a stage left by a dead process: retired, then purged
    passed[PURGED] = funnel_derivations.purge_retired(session, seconds)
    return passed


def _catch_up_sessions(session: Session, seconds: float | None) -> int:
    """The sessions' catch-up, within `seconds` when given (sessions.catch_up without
    limit takes none: this is the same derivation with one)."""
    if seconds is None:
        return sessions.catch_up(session)
    return cursors.derive_in_two_phases(
        session, sessions.CURSOR, sessions.derive_changes, sessions.store_changes, seconds=seconds
    )


def _funnels_most_caught_up_first(session: Session) -> list[tuple[int, int]]:
    """(funnel id, its derivation's cursor position) of every saved funnel that derives
    (not strict), the furthest cursor first."""
    rows = session.execute(
        select(Funnel.id, Funnel.definition, FunnelDerivation.id)
        .outerjoin(
            FunnelDerivation,
            (FunnelDerivation.funnel_id == Funnel.id) & FunnelDerivation.retired_at.is_(None),
        )
        .order_by(Funnel.id)
    ).all()
    deriving = [(f, d) for f, text, d in rows if json.loads(text).get("mode") != "strict"]
    names = {funnel_derivations.cursor_name(d): f for f, d in deriving if d is not None}
    positions = dict.fromkeys((f for f, _ in deriving), 0)
    for name, position in session.execute(
        select(DerivedCursor.name, DerivedCursor.last_event_id).where(
            DerivedCursor.name.in_(list(names))
        )
    ):
        positions[names[name]] = position
    session.rollback()
    return sorted(positions.items(), key=lambda item: (-item[1], item[0]))


def derivation_pending(session: Session) -> bool:
    """Whether a bounded catch_up_all left work worth a sooner tick: retired rows to purge,
    or a derived table so far behind that a report would not catch it up itself (a steady
    stream of new events alone keeps the set interval)."""
    retired = session.scalar(select(func.count()).where(FunnelDerivation.retired_at.is_not(None)))
    newest = session.scalar(select(func.max(Event.id))) or 0
    sessions_at = session.scalar(
        select(DerivedCursor.last_event_id).where(DerivedCursor.name == sessions.CURSOR)
    )
    funnels = _funnels_most_caught_up_first(session)
    behind = newest - min([sessions_at or 0, *(position for _, position in funnels)])
    return bool(retired) or behind > read_catch_up.REPORT_CATCH_UP_LIMIT
