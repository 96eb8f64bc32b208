"""A saved funnel's report, read from its derivation's rows (see derivation)."""

# A saved funnel keeps, derived from the events (derivation), its visitors' matched events,
# the progress of each visitor's best step-1 event per local day ("attempts") and the count
# of events without a visitor; a report reads one best attempt per visitor from a covering
# index and lets the database count, sum and find the medians, so it reads no event and
# moves one row per step to Python.

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import case, func, literal, select, union_all
from sqlalchemy.orm import Session

from ..ranges import DateRange
from . import derivation, read_catch_up, unsaved
from .definition import FunnelDefinition
from .models import Funnel, FunnelAttempt, FunnelExcluded
from .report import FunnelAnswer, FunnelReport, StepTotals, report_from_totals


def best_attempts(derivation_id: int, start: datetime, end: datetime) -> list:
    """SQL conditions: the attempts that are their visitor's best in [start, end).

    The furthest one of the visitor in the range, the earliest of those: it starts in the
    range, no attempt as deep started before it in the range, no deeper one in the range.
    """
    t = FunnelAttempt.__table__.c
    return [
        t.derivation_id == derivation_id,
        t.started_at >= start,
        t.started_at < end,
        t.prev_ge < start,
        t.next_gt >= end,
    ]


def saved_report(
    session: Session, funnel: Funnel, definition: FunnelDefinition, rng: DateRange
) -> FunnelReport:
    """A saved funnel's report (saved_answer without its freshness)."""
    return saved_answer(session, funnel, definition, rng).report


def saved_answer(
    session: Session,
    funnel: Funnel,
    definition: FunnelDefinition,
    rng: DateRange,
    deadline: float | None = None,
) -> FunnelAnswer:
    """A saved funnel's report: catch up, then read each visitor's best attempt.

    Strict funnels need every event of a visitor (to see what lies between the steps), so
    they are computed from the events like unsaved ones; so is a funnel whose derivation
    is still far behind (see REPORT_CATCH_UP_LIMIT), a range in another zone than the one
    the funnel's days follow (the site's zone changed a moment ago), and a definition that
    is no longer the funnel's (edited meanwhile). The catch-up stops at `deadline` (a
    report's budget): the answer's freshness says how current the figures are.
    """
    site_id = funnel.site_id  # as the caller read it
    caught = read_catch_up.catch_up_for_read(session, definition, funnel, rng.tz.key, deadline)
    if caught.derivation_id is not None:
        report = _derived_report(session, caught.derivation_id, definition, rng)
        if derivation.is_current(session, caught.derivation_id):
            return FunnelAnswer(report, caught.freshness)
        # Retired while it was read (an edit or a delete): its rows may be on their way out.
        return unsaved.unsaved_answer(session, site_id, definition, rng, deadline)
    return unsaved.read_answer(session, site_id, definition, rng, caught)


def preparing(session: Session, funnel: Funnel, definition: FunnelDefinition) -> bool:
    """Whether the saved funnel's report is computed from the events for now, its
    derivation being too far behind (the page says so; strict funnels derive nothing)."""
    if definition.mode == "strict":
        return False
    found = derivation.current(session, funnel.id)
    return (
        found is not None
        and derivation.backlog(session, found.id) > read_catch_up.REPORT_CATCH_UP_LIMIT
    )


def _derived_report(
    session: Session, derivation_id: int, definition: FunnelDefinition, rng: DateRange
) -> FunnelReport:
    """The report of a derivation's rows over a range."""
    start, end = rng.start_utc, rng.end_utc
    n = len(definition.steps)
    totals = StepTotals.empty(n)
    t = FunnelAttempt.__table__.c
    best = best_attempts(derivation_id, start, end)
    connection = session.connection()
    # Visitors and revenue per furthest step (v<k> is set up to the attempt's depth).
    for depth, visitors, *values in connection.execute(
        select(t.depth, func.count(), *(func.sum(t[f"v{k}"]) for k in range(1, n + 1)))
        .where(*best)
        .group_by(t.depth)
    ):
        for k in range(depth):
            totals.visitors[k] += visitors
            totals.revenue[k] += int(values[k] or 0)
    for k, middle in _middle_gaps(connection, best, totals.visitors).items():
        # The median of the middle one or two gaps is the median of them all.
        totals.gaps_micros[k] = middle
    excluded = session.scalar(
        select(func.coalesce(func.sum(FunnelExcluded.events), 0)).where(
            FunnelExcluded.derivation_id == derivation_id,
            FunnelExcluded.bucket >= start,
            FunnelExcluded.bucket < end,
        )
    )
    return report_from_totals(definition, totals, int(excluded or 0))


def _middle_gaps(connection, best: list, reached: list[int]) -> dict[int, list[int]]:
    """Per step k (0-based, from the second on): the middle one or two gaps, sorted.

    The best attempts that went past step 1 are read once (a common table the database
    materialises, as it is used once per step); each step's gaps are then sorted by the
    database and only the middle ones come back.
    """
    t = FunnelAttempt.__table__.c
    steps = [k for k in range(1, len(reached)) if reached[k]]
    if not steps:
        return {}
    past_first = (
        select(t.depth, *(t[f"g{k + 1}"] for k in steps)).where(*best, t.depth >= 2).cte("past")
    )
    parts = []
    for k in steps:
        gap = past_first.c[f"g{k + 1}"]
        count = reached[k]
        middle = (
            select(literal(k).label("step"), gap.label("gap"))
            .where(past_first.c.depth > k)
            .order_by(gap)
            .limit(2 - count % 2)
            .offset((count - 1) // 2)
            .subquery()
        )
        parts.append(select(middle.c.step, middle.c.gap))
    found: dict[int, list[int]] = defaultdict(list)
    for step, gap in connection.execute(union_all(*parts)):
        found[step].append(gap)
    return {k: sorted(gaps) for k, gaps in found.items()}


def derived_conversion(
    session: Session, funnel: Funnel, definition: FunnelDefinition, rng: DateRange
) -> tuple[int, int] | None:
    """(visitors who entered, visitors who reached the last step) of a saved funnel over
    `rng`, from its current derivation as it stands (reads only: the funnels list shows
    one per funnel); None when no derivation answers it (strict mode, still preparing, or
    days in another zone)."""
    if definition.mode == "strict":
        return None
    found = derivation.current(session, funnel.id)
    if (
        found is None
        or found.days_tz != rng.tz.key
        or found.definition != funnel.definition
        or derivation.backlog(session, found.id) > read_catch_up.REPORT_CATCH_UP_LIMIT
    ):
        return None
    t = FunnelAttempt.__table__.c
    best = best_attempts(found.id, rng.start_utc, rng.end_utc)
    last = len(definition.steps)
    entered, converted = session.execute(
        select(func.count(), func.sum(case((t.depth >= last, 1), else_=0))).where(*best)
    ).one()
    return int(entered or 0), int(converted or 0)
