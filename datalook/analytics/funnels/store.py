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

The derived rows belong to the funnel's current derivation (funnel_derivations: an edit
starts a new one, a delete retires it, and retired rows are purged in short batches). They
are derived in two phases, as the sessions are: each batch of events is computed from
reads alone, outside any write transaction, then stored in a short one under the writers'
lock if the derivation's cursor did not move meanwhile (else it is computed again).
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
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

from ...models import Event, utcnow
from ...sql.compiled import driver_rows
from .. import cursors, kinds, settled
from ..ranges import DateRange, local_day, local_midnight_utc, zone
from . import derivation as funnel_derivations
from .matching import (
    Attempt,
    FunnelDefinition,
    FunnelReport,
    Step,
    StepTotals,
    VisitorEvent,
    attempts,
    compute,
    definition_from_json,
    furthest,
    gap_micros,
    is_visitor,
    report_from_totals,
    summarise,
    visitor_progress,
)
from .models import (
    NEVER_AFTER,
    NEVER_BEFORE,
    Funnel,
    FunnelAttempt,
    FunnelDerivation,
    FunnelEvent,
    FunnelExcluded,
)

STREAM_ROWS = 5_000
# Events per derivation batch. Only storing a batch holds the writers' lock (computing it
# does not), and storing costs about as much as computing: on a 1M-event site a batch of
# 5,000 events (about 1,900 rows written) held it 50 to 90 ms at the median, about 0.2 s
# at the 90th percentile; 20,000 held it 0.25 s at the median, and derived the site only
# a fifth faster (33 against 41 µs per event). Event writers wait at most 2 s.
DERIVE_BATCH = 5_000


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
    indexed = _indexed_report(session, site_id, definition, start, end)
    if indexed is not None:
        return indexed
    rows = event_rows(session, site_id, definition, start, end + definition.window)
    return compute(definition, rows, start, end)


# Per process: how far each visitor got from the settled part of a range, per funnel.
_settled_progress = settled.AppCache("datalook_unsaved_funnels_cache", 16)


def _indexed_report(
    session: Session, site_id: int, definition: FunnelDefinition, start: datetime, end: datetime
) -> FunnelReport | None:
    """An unsaved funnel from the kind index, or None when it must read the events.

    The range splits where the attempts that start before the split end before
    settled.boundary(): what those attempts reached changes only with a bump of the
    settled generation (kinds.py bumps it for events filed there), so it is computed once
    per process and kept; each view computes the attempts from the split on and keeps, per
    visitor, the earlier part's progress unless the later part got further.
    """
    if not kinds.answers(definition) or not kinds.ready(session):
        return None
    # After the catch-up: filing events of the settled past moves the generation on.
    split = min(max(settled.boundary() - definition.window, start), end)
    earlier: tuple[dict, int] = ({}, 0)
    if split > start:
        key = ("unsaved", site_id, settled.generation(session), definition, start, split)
        found = _settled_progress.get(key)
        if found is None:
            read = kinds.visitor_events(session, site_id, definition, start, split)
            if read is None:
                return None
            found = (visitor_progress(definition, read[0], start, split), read[1])
            _settled_progress.put(key, found)
        earlier = found
    read = kinds.visitor_events(session, site_id, definition, split, end)
    if read is None:
        return None
    later = visitor_progress(definition, read[0], split, end)
    progress = furthest(earlier[0], later)
    return summarise(definition, progress.values(), earlier[1] + read[1])


def quarter_hour(moment: datetime) -> datetime:
    """The UTC quarter hour a moment falls in (the bucket of excluded events)."""
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


VISITORS_PER_QUERY = 500


class Superseded(Exception):
    """The derivation being caught up is no longer its funnel's current one (the funnel was
    edited or deleted, or the site's zone changed): nothing more is derived into it."""


@dataclass
class FunnelChanges:
    """What one batch of events does to a derivation's rows (computed from reads only)."""

    events: list[dict] = field(default_factory=list)  # new funnel_events rows
    excluded: list[dict] = field(default_factory=list)  # new funnel_excluded rows
    stale: list[dict] = field(default_factory=list)  # attempts to delete: visitor, [a, b)
    fresh: list[dict] = field(default_factory=list)  # attempts to insert, linked
    links: list[dict] = field(default_factory=list)  # kept attempts whose links move


def catch_up(session: Session, funnel: Funnel, definition: FunnelDefinition | None = None) -> int:
    """Bring a saved funnel's current derivation up to the newest safe event.

    `definition` is not needed: a derivation follows the funnel's stored definition.
    Returns the events passed over.
    """
    return catch_up_funnel(session, funnel.id)


def catch_up_funnel(session: Session, funnel_id: int, seconds: float | None = None) -> int:
    """Bring a saved funnel's current derivation up to the newest safe event, or stop at
    the first batch past `seconds` (cursors.derive_in_two_phases).

    Follows the site's zone first (a changed zone starts a new derivation). Returns the
    events passed over (0 when the funnel is gone)."""
    found = funnel_derivations.follow_site_zone(session, funnel_id)
    if found is None or found.days_tz is None:  # gone (follow_site_zone sets every zone)
        return 0
    return catch_up_derivation(session, found.id, found.days_tz, seconds)


def catch_up_derivation(
    session: Session, derivation_id: int, tz_name: str, seconds: float | None = None
) -> int:
    """Derive a derivation's rows from the events after its cursor, in two phases.

    Each batch is computed outside any write transaction (`derive_changes`) and stored in
    a short one under the writers' lock (`store_changes`), only if its cursor did not move
    meanwhile: another catch-up, an erasure, a retirement or a zone change moves it, and
    the batch is computed again (or, the derivation retired, not at all).
    """

    def derive(tx: Session, after_id: int, up_to_id: int) -> FunnelChanges:
        """The changes of the events (after_id, up_to_id] (reads only)."""
        return derive_changes(tx, derivation_id, tz_name, after_id, up_to_id)

    try:
        return cursors.derive_in_two_phases(
            session,
            funnel_derivations.cursor_name(derivation_id),
            derive,
            store_changes,
            batch=DERIVE_BATCH,
            seconds=seconds,
            create=False,
        )
    except Superseded:
        session.rollback()
        return 0


def derive_changes(
    tx: Session, derivation_id: int, tz_name: str, after_id: int, up_to_id: int
) -> FunnelChanges:
    """What the events (after_id, up_to_id] change in a derivation's rows (reads only).

    New matching events of visitors become funnel_events rows; the visitor's attempts that
    these events can change (those starting at most one window before them, up to the
    last of them, widened to whole local days) are derived again from the visitor's
    matched events, the stored ones and this batch's own. Events without a visitor are only
    counted, per quarter hour.
    """
    state = tx.execute(
        select(
            FunnelDerivation.retired_at,
            FunnelDerivation.days_tz,
            FunnelDerivation.site_id,
            Funnel.definition,
        )
        .join(Funnel, Funnel.id == FunnelDerivation.funnel_id)
        .where(FunnelDerivation.id == derivation_id)
    ).one_or_none()
    # A zone changed since the start must not be mixed in; a retired derivation is done.
    if state is None or state.retired_at is not None or state.days_tz != tz_name:
        raise Superseded
    definition = definition_from_json(state.definition)
    rows = tx.execute(
        select(*_EVENT_COLUMNS).where(
            Event.id > after_id,
            Event.id <= up_to_id,
            Event.site_id == state.site_id,
            Event.counted(),
            any_step_clause(definition),
        )
    ).all()
    changes = FunnelChanges()
    excluded: Counter[datetime] = Counter()
    new_events: dict[str, list[VisitorEvent]] = defaultdict(list)
    for event_id, visitor, at, event_name, path, name, props, value in rows:
        mask = definition.step_mask(event_name, path, name, props)
        if not mask:
            continue
        if not is_visitor(visitor):
            excluded[quarter_hour(at)] += 1
            continue
        changes.events.append(
            {
                "derivation_id": derivation_id,
                "event_id": event_id,
                "visitor_id": visitor,
                "occurred_at": at,
                "step_mask": mask,
                "value_micros": value,
            }
        )
        new_events[visitor].append(VisitorEvent(at, event_id, mask, value))
    changes.excluded = [
        {"derivation_id": derivation_id, "bucket": b, "events": n} for b, n in excluded.items()
    ]
    _derive_attempts(tx, derivation_id, definition, new_events, zone(tz_name), changes)
    return changes


def store_changes(tx: Session, changes: FunnelChanges) -> None:
    """Write a batch's changes (inside the short write transaction that moves the cursor)."""
    attempts_table = cast(Table, FunnelAttempt.__table__)
    if changes.events:
        tx.execute(insert(FunnelEvent), changes.events)
    if changes.excluded:
        tx.execute(insert(FunnelExcluded), changes.excluded)
    if changes.stale:  # before the inserts: a fresh attempt may keep a stale one's key
        tx.execute(
            delete(attempts_table).where(
                attempts_table.c.derivation_id == bindparam("d"),
                attempts_table.c.visitor_id == bindparam("v"),
                attempts_table.c.started_at >= bindparam("a"),
                attempts_table.c.started_at < bindparam("b"),
            ),
            changes.stale,
        )
    if changes.fresh:
        tx.execute(insert(attempts_table), changes.fresh)
    if changes.links:
        tx.execute(
            update(attempts_table)
            .where(
                attempts_table.c.derivation_id == bindparam("d"),
                attempts_table.c.start_event_id == bindparam("e"),
            )
            .values(prev_ge=bindparam("p"), next_gt=bindparam("n")),
            changes.links,
        )


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
    derivation_id: int,
    definition: FunnelDefinition,
    new_events: dict[str, list[VisitorEvent]],
    tz: ZoneInfo,
    changes: FunnelChanges,
) -> None:
    """Derive again the attempts that a batch's new events (per visitor) can change.

    Whole local days are derived again: a day keeps only its best attempt, which any of
    its attempts may become. The visitor's stored matched events are read; the batch's own
    are not stored yet, so they are added here.
    """
    window, n = definition.window, len(definition.steps)
    visitors = list(new_events)
    for offset in range(0, len(visitors), VISITORS_PER_QUERY):
        chunk = visitors[offset : offset + VISITORS_PER_QUERY]
        days = {}
        for v in chunk:
            times = [e.at for e in new_events[v]]
            days[v] = day_bounds(min(times) - window, max(times), tz)
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
                FunnelEvent.derivation_id == derivation_id,
                FunnelEvent.visitor_id.in_(chunk),
                FunnelEvent.occurred_at >= since,
                FunnelEvent.occurred_at < until,
            )
        ):
            events[visitor].append(VisitorEvent(at, event_id, mask, value))
        fresh: dict[str, list[dict]] = {}
        for visitor in chunk:
            first, end = days[visitor]
            changes.stale.append({"d": derivation_id, "v": visitor, "a": first, "b": end})
            mine = events[visitor] + new_events[visitor]
            found = attempts(mine, n, window, "ordered", first, end)
            fresh[visitor] = [
                _attempt_row(derivation_id, visitor, attempt) for attempt in day_bests(found, tz)
            ]
        _link(tx, derivation_id, days, fresh, changes)


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


def _link(
    tx: Session,
    derivation_id: int,
    days: dict[str, tuple[datetime, datetime]],
    fresh: dict[str, list[dict]],
    changes: FunnelChanges,
) -> None:
    """Set prev_ge/next_gt of the visitors' attempts as they will be once the batch is
    stored: the stored ones outside the days derived again, and the fresh ones (new
    attempts move the links of the others)."""
    t = FunnelAttempt.__table__.c
    kept: dict[str, list] = defaultdict(list)
    for row in tx.execute(
        select(t.visitor_id, t.start_event_id, t.started_at, t.depth, t.prev_ge, t.next_gt).where(
            t.derivation_id == derivation_id, t.visitor_id.in_(list(fresh))
        )
    ):
        first, end = days[row.visitor_id]
        if not first <= row.started_at < end:  # else replaced by the fresh attempts
            kept[row.visitor_id].append(row)
    for visitor, rows in fresh.items():
        # (start, key, depth, the stored row or the fresh row) in the visitor's order.
        merged = [(r.started_at, r.start_event_id, r.depth, r) for r in kept[visitor]]
        merged += [(r["started_at"], r["start_event_id"], r["depth"], r) for r in rows]
        merged.sort(key=lambda item: (item[0], item[1]))
        links = attempt_links([(started_at, depth) for started_at, _, depth, _ in merged])
        for (_, key, _, row), (prev_ge, next_gt) in zip(merged, links, strict=True):
            if isinstance(row, dict):
                row["prev_ge"], row["next_gt"] = prev_ge, next_gt
            elif (row.prev_ge, row.next_gt) != (prev_ge, next_gt):
                changes.links.append({"d": derivation_id, "e": key, "p": prev_ge, "n": next_gt})
        changes.fresh.extend(rows)


def _attempt_row(derivation_id: int, visitor: str, attempt: Attempt) -> dict:
    """The funnel_attempts row of an attempt (linked by _link)."""
    row = {
        "derivation_id": derivation_id,
        "start_event_id": attempt.seq,
        "visitor_id": visitor,
        "started_at": attempt.times[0],
        "depth": attempt.depth,
        "prev_ge": NEVER_BEFORE,
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


def _best_attempts(derivation_id: int, start: datetime, end: datetime) -> list:
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


# A report catches a saved funnel up itself while it is at most this many events behind
# (a second or two of derivation). Further behind (a new or edited funnel on a large site,
# which the fold process derives in bounded steps), it is computed from the events like an
# unsaved funnel: same figures, without making the page wait minutes.
REPORT_CATCH_UP_LIMIT = 20_000


def saved_report(
    session: Session, funnel: Funnel, definition: FunnelDefinition, rng: DateRange
) -> FunnelReport:
    """A saved funnel's report: catch up, then read each visitor's best attempt.

    Strict funnels need every event of a visitor (to see what lies between the steps), so
    they are computed from the events like unsaved ones; so is a funnel whose derivation
    is still far behind (see REPORT_CATCH_UP_LIMIT), a range in another zone than the one
    the funnel's days follow (the site's zone changed a moment ago), and a definition that
    is no longer the funnel's (edited meanwhile).
    """
    site_id, text = funnel.site_id, funnel.definition  # as the caller read them
    if definition.mode == "strict":
        return unsaved_report(session, site_id, definition, rng)
    found = funnel_derivations.follow_site_zone(session, funnel.id)
    if (
        found is None
        or found.days_tz != rng.tz.key
        or found.definition != text
        or funnel_derivations.backlog(session, found.id) > REPORT_CATCH_UP_LIMIT
    ):
        return unsaved_report(session, site_id, definition, rng)
    catch_up_derivation(session, found.id, rng.tz.key)
    report = _derived_report(session, found.id, definition, rng)
    # Retired while it was read (an edit or a delete): its rows may be on their way out.
    if not funnel_derivations.is_current(session, found.id):
        return unsaved_report(session, site_id, definition, rng)
    return report


def preparing(session: Session, funnel: Funnel, definition: FunnelDefinition) -> bool:
    """Whether the saved funnel's report is computed from the events for now, its
    derivation being too far behind (the page says so; strict funnels derive nothing)."""
    if definition.mode == "strict":
        return False
    found = funnel_derivations.current(session, funnel.id)
    return (
        found is not None and funnel_derivations.backlog(session, found.id) > REPORT_CATCH_UP_LIMIT
    )


def _derived_report(
    session: Session, derivation_id: int, definition: FunnelDefinition, rng: DateRange
) -> FunnelReport:
    """The report of a derivation's rows over a range."""
    start, end = rng.start_utc, rng.end_utc
    n = len(definition.steps)
    totals = StepTotals.empty(n)
    t = FunnelAttempt.__table__.c
    best = _best_attempts(derivation_id, start, end)
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


def save(
    session: Session, site_id: int, name: str, definition: FunnelDefinition, funnel=None
) -> Funnel:
    """Create a saved funnel with its first derivation, or change one.

    New steps, a new window or mode retire the funnel's derivation and start another, so
    the funnel reports its new definition at once and never from the old rows. One small
    write: the old rows are purged afterwards (funnel_derivations.purge_retired).
    FunnelGone when the funnel was deleted meanwhile.
    """
    text = json.dumps(definition.as_json(), separators=(",", ":"))
    funnel_id = None if funnel is None else funnel.id
    session.rollback()  # begin the write inside the writers' lock
    with funnel_derivations.writers_lock(session):
        days_tz = funnel_derivations.site_days_zone(session, site_id)
        if funnel_id is None:
            saved = Funnel(site_id=site_id, name=name, definition=text)
            session.add(saved)
            session.flush()
            funnel_derivations.start(session, saved.id, site_id, days_tz)
        else:
            locked = funnel_derivations.lock_funnel(session, funnel_id)
            if locked is None:
                session.rollback()
                raise funnel_derivations.FunnelGone(funnel_id)
            saved = locked
            if saved.definition != text:
                funnel_derivations.retire(session, funnel_id)
                funnel_derivations.start(session, funnel_id, saved.site_id, days_tz)
            saved.name, saved.definition, saved.updated_at = name, text, utcnow()
        session.commit()
    return saved


def delete_funnel(session: Session, funnel: Funnel) -> None:
    """Delete a saved funnel: one small write that retires its derivation (whose rows
    funnel_derivations.purge_retired deletes afterwards, in short batches)."""
    funnel_id = funnel.id
    session.rollback()  # begin the write inside the writers' lock
    with funnel_derivations.writers_lock(session):
        locked = funnel_derivations.lock_funnel(session, funnel_id)
        if locked is not None:
            funnel_derivations.retire(session, funnel_id)
            session.delete(locked)
        session.commit()
