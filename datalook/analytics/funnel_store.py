"""Funnels against the database: unsaved ones read the events, saved ones their matched events.

An unsaved funnel reads the events of the kinds its steps match from the kind index
(analytics.kinds); when it cannot (strict mode, a property step, a first derivation), it
reads the range (plus the window) of the events through the (site_id, occurred_at) index:
only the columns it needs, filtered in SQL to events that can match a step (a property
step is narrowed in SQL by its key and checked exactly in Python), streamed per visitor
in time order. A saved funnel keeps, fed by a cursor over events.id and caught up before each
read, its visitors' matched events, the progress of each visitor's best step-1 event per
local day ("attempts") and the count of events without a visitor; a report reads one best
attempt per visitor from a covering index and lets the database count, sum and find the
medians, so it reads no event and moves one row per step to Python. Strict funnels need
every event of a visitor (to see what lies between steps), so they are always read from
the events.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from ..models import Event, Site, utcnow
from ..sql.compiled import driver_rows
from . import cursors, kinds
from .funnel_models import (
    NEVER_AFTER,
    NEVER_BEFORE,
    Funnel,
    FunnelAttempt,
    FunnelEvent,
    FunnelExcluded,
)
from .funnels import (
    Attempt,
    FunnelDefinition,
    FunnelReport,
    Step,
    StepTotals,
    VisitorEvent,
    attempts,
    compute,
    compute_visitors,
    gap_micros,
    is_visitor,
    report_from_totals,
)
from .ranges import DateRange, local_day, local_midnight_utc, site_zone, zone

STREAM_ROWS = 5_000
# Events per derivation transaction. It holds the writers' lock while it derives (about
# 100 µs per event on the 10M benchmark site), so a batch of 2,000 keeps event writers
# waiting some 0.2 s at most, where 20,000 went past their 2 s budget.
DERIVE_BATCH = 2_000


def step_clause(step: Step) -> ColumnElement[bool]:
    """SQL that keeps the events that may satisfy `step` (exact for all but properties)."""
    parts = [Event.event_name == step.event_name]
    if step.page_path is not None:
        prefix = step.path_prefix
        if prefix is not None:
            parts.append(Event.page_path.startswith(prefix, autoescape=True))
        else:
            parts.append(Event.page_path == step.page_path)
    if step.name is not None:
        parts.append(Event.name == step.name)
    if step.property_key is not None:
        parts.append(Event.properties.is_not(None))
        quoted = json.dumps(step.property_key, ensure_ascii=False)
        if quoted[1:-1] == step.property_key:  # no escapes: the stored text holds it as is
            parts.append(Event.properties.contains(quoted, autoescape=True))
    return and_(*parts)


def any_step_clause(definition: FunnelDefinition) -> ColumnElement[bool]:
    """SQL that keeps the events that may satisfy any step."""
    return or_(*(step_clause(step) for step in definition.steps))


_EVENT_COLUMNS = (
    Event.id,
    Event.visitor_id,
    Event.occurred_at,
    Event.event_name,
    Event.page_path,
    Event.name,
    Event.properties,
    Event.success_value_micros,
)


def mask_expression(definition: FunnelDefinition) -> ColumnElement[int]:
    """SQL: the step mask of an event (property steps still need the exact check)."""
    return sum(
        (case((step_clause(step), 1 << k), else_=0) for k, step in enumerate(definition.steps)),
        start=literal(0),
    )


def event_rows(
    session: Session, site_id: int, definition: FunnelDefinition, start: datetime, end: datetime
) -> Iterator[tuple]:
    """The site's events in [start, end) per visitor in time order, with their step masks.

    The mask is computed by the database; a property step's bit is checked again here
    against the parsed properties (SQL only narrows it by the key). Rows come as plain
    tuples in MatchRow's order (a million of them is the common case at 10M events).
    """
    property_bits = [
        (1 << k, step) for k, step in enumerate(definition.steps) if step.property_key is not None
    ]
    query = select(
        Event.id,
        Event.visitor_id,
        Event.occurred_at,
        mask_expression(definition).label("mask"),
        Event.success_value_micros,
        # Only a property step needs the columns to check it again.
        *(
            (Event.properties, Event.event_name, Event.page_path, Event.name)
            if property_bits
            else ()
        ),
    ).where(
        Event.site_id == site_id,
        Event.occurred_at >= start,
        Event.occurred_at < end,
        Event.counted(),
    )
    strict = definition.mode == "strict"
    if not strict:  # strict needs the events between the steps too
        query = query.where(any_step_clause(definition))
    # Grouped by visitor for the matching; the database sorts the range's matching rows.
    query = query.order_by(Event.visitor_id, Event.occurred_at, Event.id)
    rows = driver_rows(session.connection(), query, STREAM_ROWS)
    first = next(rows, None)
    if first is None:
        return
    # SQLite hands times over as their stored ISO text, PostgreSQL as datetimes.
    as_time = datetime.fromisoformat if isinstance(first[2], str) else None
    for row in itertools.chain((first,), rows):
        if as_time is not None:
            row = (row[0], row[1], as_time(row[2]), *row[3:])
        if property_bits:
            mask = row[3]
            event_id, visitor, at, _, value, props, event_name, path, name = row
            for bit, step in property_bits:
                if mask & bit and not step.matches(event_name, path, name, props):
                    mask &= ~bit
            if mask or strict:
                yield (event_id, visitor, at, mask, value)
        elif row[3] or strict:
            yield row


def unsaved_report(
    session: Session, site_id: int, definition: FunnelDefinition, rng: DateRange
) -> FunnelReport:
    """Compute a funnel from the events of the range (and the window after it): read from
    the kind index where it can be (see analytics.kinds), else from the events."""
    start, end = rng.start_utc, rng.end_utc
    indexed = kinds.visitor_events(session, site_id, definition, start, end)
    if indexed is not None:
        return compute_visitors(definition, *indexed, start, end)
    rows = event_rows(session, site_id, definition, start, end + definition.window)
    return compute(definition, rows, start, end)


def cursor_name(funnel_id: int) -> str:
    """The cursor of a saved funnel's derived rows."""
    return f"funnel:{funnel_id}"


def quarter_hour(moment: datetime) -> datetime:
    """The UTC quarter hour a moment falls in (the bucket of excluded events)."""
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


VISITORS_PER_QUERY = 500


class ZoneChanged(Exception):
    """The site's time zone changed during a catch-up: the next one derives the funnel again."""


def days_zone(session: Session, funnel_id: int) -> str:
    """The zone whose local days the funnel's attempts follow: the site's (commits).

    When the site's zone changed, the funnel is derived again: its kept attempts were
    the best of other days than the ranges now ask for. A funnel that kept every attempt
    (None) only starts keeping one per day.
    """
    stored_tz, kept = session.execute(
        select(Site.timezone, Funnel.days_tz)
        .join(Funnel, Funnel.site_id == Site.id)
        .where(Funnel.id == funnel_id)
    ).one()
    # The zone that really cuts the site's days: UTC when this server does not know the
    # stored name, as in every report.
    site_tz = site_zone(stored_tz).key
    if kept != site_tz:
        if kept is not None:
            forget_matches(session, funnel_id)
        session.execute(update(Funnel).where(Funnel.id == funnel_id).values(days_tz=site_tz))
        session.commit()
    return site_tz


def catch_up(session: Session, funnel: Funnel, definition: FunnelDefinition) -> int:
    """Bring a saved funnel's derived rows up to the newest safe event.

    New matching events of visitors go to funnel_events; the visitor's attempts that
    these events can change (those starting at most one window before them, up to the
    last of them, widened to whole local days) are derived again from the visitor's
    matched events. Events without a visitor are only counted, per quarter hour.
    """
    tz_name = days_zone(session, funnel.id)
    tz = zone(tz_name)

    def apply(tx: Session, after_id: int, up_to_id: int) -> None:
        """Derive the funnel's rows from the events (after_id, up_to_id]."""
        # Under the cursor's lock: a zone changed since the start must not be mixed in.
        if tx.scalar(select(Funnel.days_tz).where(Funnel.id == funnel.id)) != tz_name:
            raise ZoneChanged
        rows = tx.execute(
            select(*_EVENT_COLUMNS).where(
                Event.id > after_id,
                Event.id <= up_to_id,
                Event.site_id == funnel.site_id,
                Event.counted(),
                any_step_clause(definition),
            )
        ).all()
        matched = []
        excluded: Counter[datetime] = Counter()
        spans: dict[str, tuple[datetime, datetime]] = {}
        for event_id, visitor, at, event_name, path, name, props, value in rows:
            mask = definition.step_mask(event_name, path, name, props)
            if not mask:
                continue
            if not is_visitor(visitor):
                excluded[quarter_hour(at)] += 1
                continue
            matched.append(
                {
                    "funnel_id": funnel.id,
                    "event_id": event_id,
                    "visitor_id": visitor,
                    "occurred_at": at,
                    "step_mask": mask,
                    "value_micros": value,
                }
            )
            first, last = spans.get(visitor, (at, at))
            spans[visitor] = (min(first, at), max(last, at))
        if matched:
            tx.execute(insert(FunnelEvent), matched)
        if excluded:
            tx.execute(
                insert(FunnelExcluded),
                [{"funnel_id": funnel.id, "bucket": b, "events": n} for b, n in excluded.items()],
            )
        _derive_attempts(tx, funnel.id, definition, spans, tz)

    try:
        return cursors.catch_up(session, cursor_name(funnel.id), apply, DERIVE_BATCH)
    except ZoneChanged:
        session.rollback()
        return 0


def day_bounds(first: datetime, last: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """[start of the local day of `first`, end of the local day of `last`) in naive UTC."""
    return (
        local_midnight_utc(local_day(first, tz), tz),
        local_midnight_utc(local_day(last, tz) + timedelta(days=1), tz),
    )


def day_bests(found: Iterator[Attempt], tz: ZoneInfo) -> Iterator[Attempt]:
    """Of attempts in time order, the best of each local day: the furthest, the earliest.

    Any range is whole local days, so another attempt of the same day is never a visitor's
    best: the kept one is in every range that holds it, and at least as far.
    """
    best: Attempt | None = None
    best_day = None
    for attempt in found:
        day = local_day(attempt.times[0], tz)
        if best is None or day != best_day:
            if best is not None:
                yield best
            best, best_day = attempt, day
        elif attempt.depth > best.depth:
            best = attempt
    if best is not None:
        yield best


def _derive_attempts(
    tx: Session,
    funnel_id: int,
    definition: FunnelDefinition,
    spans: dict[str, tuple[datetime, datetime]],
    tz: ZoneInfo,
) -> None:
    """Derive again the attempts that new events in `spans` (per visitor) can change.

    Whole local days are derived again: a day keeps only its best attempt, which any of
    its attempts may become.
    """
    window, n = definition.window, len(definition.steps)
    attempts_table = cast(Table, FunnelAttempt.__table__)
    visitors = list(spans)
    for offset in range(0, len(visitors), VISITORS_PER_QUERY):
        chunk = visitors[offset : offset + VISITORS_PER_QUERY]
        days = {v: day_bounds(spans[v][0] - window, spans[v][1], tz) for v in chunk}
        since = min(days[v][0] for v in chunk)
        until = max(days[v][1] for v in chunk) + window
        events: dict[str, list[VisitorEvent]] = defaultdict(list)
        for event_id, visitor, at, mask, value in tx.execute(
            select(
                FunnelEvent.event_id,
                FunnelEvent.visitor_id,
                FunnelEvent.occurred_at,
                FunnelEvent.step_mask,
                FunnelEvent.value_micros,
            ).where(
                FunnelEvent.funnel_id == funnel_id,
                FunnelEvent.visitor_id.in_(chunk),
                FunnelEvent.occurred_at >= since,
                FunnelEvent.occurred_at < until,
            )
        ):
            events[visitor].append(VisitorEvent(at, event_id, mask, value))
        stale, fresh = [], []
        for visitor in chunk:
            first, end = days[visitor]
            stale.append({"f": funnel_id, "v": visitor, "a": first, "b": end})
            found = attempts(events[visitor], n, window, "ordered", first, end)
            for attempt in day_bests(found, tz):
                fresh.append(_attempt_row(funnel_id, visitor, attempt))
        tx.execute(
            delete(attempts_table).where(
                attempts_table.c.funnel_id == bindparam("f"),
                attempts_table.c.visitor_id == bindparam("v"),
                attempts_table.c.started_at >= bindparam("a"),
                attempts_table.c.started_at < bindparam("b"),
            ),
            stale,
        )
        if fresh:
            tx.execute(insert(attempts_table), fresh)
        _relink(tx, funnel_id, chunk)


def attempt_links(
    ordered: list[tuple[datetime, int]],
) -> list[tuple[datetime, datetime]]:
    """For one visitor's attempts (start, depth) in order: (prev_ge, next_gt) of each.

    prev_ge: start of the previous attempt at least as deep; next_gt: start of the next
    deeper one (NEVER_BEFORE / NEVER_AFTER when there is none).
    """
    last_at_least = [NEVER_BEFORE] * 10  # by depth: the latest start reaching it so far
    prev = []
    for started_at, depth in ordered:
        prev.append(last_at_least[depth])
        for d in range(1, depth + 1):
            last_at_least[d] = started_at
    next_at_least = [NEVER_AFTER] * 10  # by depth: the earliest later start reaching it
    following = [NEVER_AFTER] * len(ordered)
    for i in range(len(ordered) - 1, -1, -1):
        started_at, depth = ordered[i]
        following[i] = next_at_least[depth + 1]
        for d in range(1, depth + 1):
            next_at_least[d] = started_at
    return list(zip(prev, following, strict=True))


def _relink(tx: Session, funnel_id: int, visitors: list[str]) -> None:
    """Set prev_ge/next_gt of every attempt of these visitors (new attempts move them)."""
    t = FunnelAttempt.__table__.c
    rows = tx.execute(
        select(t.visitor_id, t.start_event_id, t.started_at, t.depth, t.prev_ge, t.next_gt)
        .where(t.funnel_id == funnel_id, t.visitor_id.in_(visitors))
        .order_by(t.visitor_id, t.started_at, t.start_event_id)
    ).all()
    changed = []
    start = 0
    while start < len(rows):
        end = start
        while end < len(rows) and rows[end].visitor_id == rows[start].visitor_id:
            end += 1
        mine = rows[start:end]
        links = attempt_links([(r.started_at, r.depth) for r in mine])
        for row, (prev_ge, next_gt) in zip(mine, links, strict=True):
            if (row.prev_ge, row.next_gt) != (prev_ge, next_gt):
                changed.append(
                    {"f": funnel_id, "e": row.start_event_id, "p": prev_ge, "n": next_gt}
                )
        start = end
    if changed:
        table = cast(Table, FunnelAttempt.__table__)
        tx.execute(
            update(table)
            .where(table.c.funnel_id == bindparam("f"), table.c.start_event_id == bindparam("e"))
            .values(prev_ge=bindparam("p"), next_gt=bindparam("n")),
            changed,
        )


def _attempt_row(funnel_id: int, visitor: str, attempt: Attempt) -> dict:
    """The funnel_attempts row of an attempt."""
    row = {
        "funnel_id": funnel_id,
        "start_event_id": attempt.seq,
        "visitor_id": visitor,
        "started_at": attempt.times[0],
        "depth": attempt.depth,
        "prev_ge": NEVER_BEFORE,  # set by _relink
        "next_gt": NEVER_AFTER,
    }
    for k in range(1, 9):
        row[f"v{k}"] = attempt.values[k - 1] if k <= attempt.depth else None
        if k >= 2:
            reached = k <= attempt.depth
            row[f"g{k}"] = (
                gap_micros(attempt.times[k - 2], attempt.times[k - 1]) if reached else None
            )
    return row


def forget_matches(session: Session, funnel_id: int) -> None:
    """Drop a funnel's derived rows and rewind its cursor (its steps changed)."""
    cursors.lock_and_read(session, cursor_name(funnel_id))  # not while a catch-up runs
    for table in (FunnelEvent, FunnelAttempt, FunnelExcluded):
        session.execute(delete(table).where(table.funnel_id == funnel_id))
    cursors.reset(session, cursor_name(funnel_id))


def _best_attempts(funnel_id: int, start: datetime, end: datetime) -> list:
    """SQL conditions: the attempts that are their visitor's best in [start, end).

    The furthest one of the visitor in the range, the earliest of those: it starts in the
    range, no attempt as deep started before it in the range, no deeper one in the range.
    """
    t = FunnelAttempt.__table__.c
    return [
        t.funnel_id == funnel_id,
        t.started_at >= start,
        t.started_at < end,
        t.prev_ge < start,
        t.next_gt >= end,
    ]


def saved_report(
    session: Session, funnel: Funnel, definition: FunnelDefinition, rng: DateRange
) -> FunnelReport:
    """A saved funnel's report: catch up, then read each visitor's best attempt.

    Strict funnels need every event of a visitor (to see what lies between the steps), so
    they are computed from the events like unsaved ones; so is a range in another zone
    than the one the funnel's days follow (the site's zone changed a moment ago).
    """
    if definition.mode == "strict":
        return unsaved_report(session, funnel.site_id, definition, rng)
    catch_up(session, funnel, definition)
    kept_tz = session.scalar(select(Funnel.days_tz).where(Funnel.id == funnel.id))
    if kept_tz != rng.tz.key:
        return unsaved_report(session, funnel.site_id, definition, rng)
    start, end = rng.start_utc, rng.end_utc
    n = len(definition.steps)
    totals = StepTotals.empty(n)
    t = FunnelAttempt.__table__.c
    best = _best_attempts(funnel.id, start, end)
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
            FunnelExcluded.funnel_id == funnel.id,
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


def save(
    session: Session, site_id: int, name: str, definition: FunnelDefinition, funnel=None
) -> Funnel:
    """Create a saved funnel, or change one (its matched events are rebuilt on next read)."""
    text = json.dumps(definition.as_json(), separators=(",", ":"))
    if funnel is None:
        funnel = Funnel(site_id=site_id, name=name, definition=text)
        session.add(funnel)
    else:
        if funnel.definition != text:
            forget_matches(session, funnel.id)
        funnel.name, funnel.definition, funnel.updated_at = name, text, utcnow()
    session.commit()
    return funnel


def delete_funnel(session: Session, funnel: Funnel) -> None:
    """Delete a saved funnel with its matched events and its cursor."""
    forget_matches(session, funnel.id)
    session.execute(delete(Funnel).where(Funnel.id == funnel.id))
    session.execute(
        delete(cursors.DerivedCursor).where(cursors.DerivedCursor.name == cursor_name(funnel.id))
    )
    session.commit()
