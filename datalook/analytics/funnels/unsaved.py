"""An unsaved funnel's report, from the copy of the events (store_match) when it answers,
else from the kind index or the events."""

# An unsaved funnel reads the events of the kinds its steps match from the kind index
# (analytics.kinds); when it cannot (strict mode, a property step, a first derivation), it
# reads the range (plus the window) of the events through the (site_id, occurred_at) index:
# only the columns it needs, filtered in SQL to events that can match a step (a property
# step is narrowed in SQL by its key and checked exactly in Python), streamed per visitor
# in time order. Strict funnels need every event of a visitor (to see what lies between
# steps), so they are always read from the events.

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...models import Event
from ...sql.compiled import driver_rows
from .. import kinds, settled
from ..backlog import from_events, newest_id
from ..ranges import DateRange
from . import store_match
from .clauses import any_step_clause, mask_expression
from .definition import FunnelDefinition
from .matching import furthest, visitor_progress
from .read_catch_up import CaughtUp, apply_links, catch_up_for_read
from .report import FunnelAnswer, FunnelReport, compute, summarise

STREAM_ROWS = 5_000


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
    return unsaved_answer(session, site_id, definition, rng).report


def unsaved_answer(
    session: Session,
    site_id: int,
    definition: FunnelDefinition,
    rng: DateRange,
    deadline: float | None = None,
) -> FunnelAnswer:
    """unsaved_report with its freshness: from the copy of the events when it answers at
    once (store_match; only the identity links are caught up: it reads the events as they
    are), else catching up until `deadline` (a report's budget) at most."""
    apply_links(session)
    answer = _store_answer(session, site_id, definition, rng)
    if answer is not None:
        return answer
    caught = catch_up_for_read(session, definition, deadline=deadline)
    return _caught_answer(session, site_id, definition, rng, caught)


def read_report(
    session: Session, site_id: int, definition: FunnelDefinition, rng: DateRange, caught: CaughtUp
) -> FunnelReport:
    """An unsaved funnel's report from what catch_up_for_read caught up (reads only)."""
    return read_answer(session, site_id, definition, rng, caught).report


def read_answer(
    session: Session, site_id: int, definition: FunnelDefinition, rng: DateRange, caught: CaughtUp
) -> FunnelAnswer:
    """An unsaved funnel's report, reads only: from the copy of the events when it answers
    at once, else from what catch_up_for_read caught up."""
    answer = _store_answer(session, site_id, definition, rng)
    if answer is not None:
        return answer
    return _caught_answer(session, site_id, definition, rng, caught)


def _caught_answer(
    session: Session, site_id: int, definition: FunnelDefinition, rng: DateRange, caught: CaughtUp
) -> FunnelAnswer:
    """The funnel from what catch_up_for_read caught up: the kind index when it answers
    (as current as it is), else (or when it cannot after all) the events (complete)."""
    start, end = rng.start_utc, rng.end_utc
    if caught.kind_index:
        indexed = _indexed_report(session, site_id, definition, start, end)
        if indexed is not None:
            return FunnelAnswer(indexed, caught.freshness)
    rows = event_rows(session, site_id, definition, start, end + definition.window)
    # Read from the events: as current as they are.
    current = from_events(session) if caught.kind_index else caught.freshness
    return FunnelAnswer(compute(definition, rows, start, end), current)


def _store_answer(
    session: Session, site_id: int, definition: FunnelDefinition, rng: DateRange
) -> FunnelAnswer | None:
    """The funnel from the copy of the events (store_match), as current as the events; None
    when the copy cannot answer it at once (store_match.copy_ready)."""
    start, end = rng.start_utc, rng.end_utc
    newest = newest_id(session)
    chosen = store_match.ready_segments(session, site_id, start, end + definition.window)
    if chosen is None:
        return None
    report = store_match.store_report(site_id, definition, start, end, chosen)
    return FunnelAnswer(report, from_events(session, newest))


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
