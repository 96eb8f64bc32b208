"""Who reached or dropped off at a step of a saved funnel: a bounded page of visitors.

A visitor "converted" at step k when their furthest step in the range is k or later, and
"dropped" at step k (k ≥ 2) when it is exactly k - 1: they reached the step before and
not this one. The counts are the report's (each visitor once, at their furthest step), so
a page of either list adds up to the report's figures.

A saved ordered funnel is read from its derivation (each visitor's best attempt, from the
covering index, LIMIT/OFFSET by visitor id); a strict one, or one whose derivation is not
ready, from the events as its report then is.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..ranges import DateRange
from ..sessions import decode_steps
from ..visitor_ids import is_visitor
from .definition import FunnelDefinition
from .matching import visitor_progress
from .models import Funnel, FunnelAttempt, VisitorSession
from .read_catch_up import catch_up_for_read
from .saved import best_attempts
from .unsaved import event_rows

OUTCOMES = ("converted", "dropped")
PAGE_SIZE = 50
# A CSV holds at most this many visitors: a download stays a bounded read.
CSV_LIMIT = 10_000


@dataclass(frozen=True)
class StepVisitor:
    """One visitor of the list: who, when they entered step 1, the furthest step reached."""

    visitor_id: str
    entered_at: datetime
    furthest: int


@dataclass(frozen=True)
class VisitorPage:
    """A page of the list, and whether another follows."""

    visitors: tuple[StepVisitor, ...]
    more: bool


def depth_bounds(step: int, outcome: str) -> tuple[int, int]:
    """The furthest steps (lowest, highest) of the visitors who `outcome` at `step`."""
    if outcome == "converted":
        return step, 8
    return step - 1, step - 1


def step_visitors(
    session: Session,
    funnel: Funnel,
    definition: FunnelDefinition,
    rng: DateRange,
    step: int,
    outcome: str,
    limit: int = PAGE_SIZE,
    offset: int = 0,
    deadline: float | None = None,
) -> VisitorPage:
    """A page (by visitor id) of the visitors who `outcome` at `step` (1-based) in `rng`."""
    low, high = depth_bounds(step, outcome)
    caught = catch_up_for_read(session, definition, funnel, rng.tz.key, deadline)
    if caught.derivation_id is not None:
        t = FunnelAttempt.__table__.c
        rows = session.execute(
            select(t.visitor_id, t.started_at, t.depth)
            .where(*best_attempts(caught.derivation_id, rng.start_utc, rng.end_utc))
            .where(t.depth >= low, t.depth <= high)
            .order_by(t.visitor_id)
            .limit(limit + 1)
            .offset(offset)
        ).all()
        found = [StepVisitor(v, at, depth) for v, at, depth in rows]
    else:
        found = from_events(session, funnel.site_id, definition, rng, low, high)[
            offset : offset + limit + 1
        ]
    return VisitorPage(tuple(found[:limit]), len(found) > limit)


def from_events(
    session: Session,
    site_id: int,
    definition: FunnelDefinition,
    rng: DateRange,
    low: int,
    high: int,
) -> list[StepVisitor]:
    """The visitors whose furthest step is within [low, high], matched from the events (as
    the report is when no derivation answers), by visitor id."""
    start, end = rng.start_utc, rng.end_utc
    grouped: dict[str, list[tuple]] = defaultdict(list)
    rows = event_rows(session, site_id, definition, start, end + definition.window)
    for visitor, events in itertools.groupby(rows, key=lambda r: r[1]):
        if is_visitor(visitor):
            grouped[visitor] = [(at, seq, mask, value) for seq, _, at, mask, value in events]
    progress = visitor_progress(definition, grouped, start, end)
    return [
        StepVisitor(visitor, p.times[0], p.depth)
        for visitor, p in sorted(progress.items())
        if low <= p.depth <= high
    ]


# A visitor's journey page shows at most this many of their sessions, newest first.
JOURNEY_SESSIONS = 50


@dataclass(frozen=True)
class VisitorSessionRow:
    """One session of a visitor as their journey page shows it."""

    started_at: datetime
    ended_at: datetime
    paths: tuple[str, ...]
    more_steps: int
    rules: tuple[str, ...]


def visitor_journey(
    session: Session, site_id: int, visitor_id: str, rng: DateRange
) -> list[VisitorSessionRow]:
    """The visitor's sessions that ended in `rng` (newest first, at most JOURNEY_SESSIONS),
    from the derived sessions through their (site, visitor, ended_at) index."""
    t = VisitorSession.__table__.c
    rows = session.execute(
        select(t.started_at, t.ended_at, t.paths, t.path_count, t.rules)
        .where(
            t.site_id == site_id,
            t.visitor_id == visitor_id,
            t.ended_at >= rng.start_utc,
            t.ended_at < rng.end_utc,
        )
        .order_by(t.ended_at.desc())
        .limit(JOURNEY_SESSIONS)
    ).all()
    found = []
    for started, ended, paths, count, rules in rows:
        steps = tuple(decode_steps(paths))
        found.append(
            VisitorSessionRow(
                started,
                ended,
                steps,
                max(0, count - len(steps)),
                tuple(r for r in rules.split("|") if r),
            )
        )
    return found
