"""What a batch of events changes in a saved funnel's derived rows, and storing it."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from ...models import Event
from ..ranges import local_day, local_midnight_utc, zone
from ..visitor_ids import is_visitor
from .clauses import any_step_clause
from .definition import FunnelDefinition, definition_from_json
from .matching import Attempt, VisitorEvent, attempts
from .models import (
    NEVER_AFTER,
    NEVER_BEFORE,
    Funnel,
    FunnelAttempt,
    FunnelDerivation,
    FunnelEvent,
    FunnelExcluded,
)
from .report import gap_micros

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
    days = {}
    for visitor, events in new_events.items():
        times = [e.at for e in events]
        days[visitor] = day_bounds(min(times) - definition.window, max(times), tz)
    _derive_days(tx, derivation_id, definition, days, new_events, tz, changes)


def forget_changes(
    tx: Session,
    derivation_id: int,
    definition: FunnelDefinition,
    tz_name: str,
    spans: dict[str, tuple[datetime, datetime]],
) -> FunnelChanges:
    """What deleting matched events changes in a derivation's attempts (reads only).

    `spans`: per visitor, the first and last time of their deleted matched events, whose
    funnel_events rows this transaction has deleted already. The attempts these events
    were part of (starting at most one window before them, up to the last of them) and
    the others of the same local days are derived again from the matched events left, as
    new events derive them; the links of the visitor's other attempts follow.
    """
    tz = zone(tz_name)
    days = {
        visitor: day_bounds(first - definition.window, last, tz)
        for visitor, (first, last) in spans.items()
    }
    changes = FunnelChanges()
    _derive_days(tx, derivation_id, definition, days, {}, tz, changes)
    return changes


def _derive_days(
    tx: Session,
    derivation_id: int,
    definition: FunnelDefinition,
    days: dict[str, tuple[datetime, datetime]],
    new_events: dict[str, list[VisitorEvent]],
    tz: ZoneInfo,
    changes: FunnelChanges,
) -> None:
    """Derive the attempts of each visitor's days [first, end) (of `days`) again, from
    their stored matched events and their `new_events` (not stored yet)."""
    window, n = definition.window, len(definition.steps)
    visitors = list(days)
    for offset in range(0, len(visitors), VISITORS_PER_QUERY):
        chunk = visitors[offset : offset + VISITORS_PER_QUERY]
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
            mine = events[visitor] + new_events.get(visitor, [])
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
