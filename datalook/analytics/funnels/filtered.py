"""A funnel with filters (saved or not), counted from the events: an attempt may start only
at a step-1 event whose visit passes the filters (reports.visit_filter); its later steps
may lie in any visit, as without filters.

Neither the kind index nor a saved funnel's derived attempts know visits, so the range's
events are read (as the unfiltered funnel does when it cannot use them): the answer is as
current as the events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from sqlalchemy.orm import Session

from ...acquisition.dimensions import Filter
from ..backlog import from_events
from ..ranges import DateRange
from ..reports.visit_filter import passing_events
from ..visitor_ids import is_visitor
from .breakdown import broken_down
from .definition import FunnelDefinition
from .report import FunnelAnswer, FunnelReport, compute
from .unsaved import event_rows


def filtered_answer(
    session: Session,
    site_id: int,
    definition: FunnelDefinition,
    rng: DateRange,
    filters: Sequence[Filter],
) -> FunnelAnswer:
    """The funnel over the range, its attempts starting in visits that pass the filters."""
    rows = filtered_rows(session, site_id, definition, rng, filters)
    return FunnelAnswer(compute(definition, rows, rng.start_utc, rng.end_utc), from_events(session))


def broken_down_answer(
    session: Session,
    site_id: int,
    definition: FunnelDefinition,
    rng: DateRange,
    filters: Sequence[Filter],
    dimension: str,
) -> tuple[FunnelAnswer, list[tuple[str, FunnelReport]]]:
    """The funnel over the range (after any filters) and per value of `dimension` (channel
    or source of the step-1 visit) the funnel of the visitors who entered there."""
    rows = filtered_rows(session, site_id, definition, rng, filters)
    overall, per_value = broken_down(
        session, site_id, definition, rows, rng.start_utc, rng.end_utc, dimension
    )
    return FunnelAnswer(overall, from_events(session)), per_value


def filtered_rows(
    session: Session,
    site_id: int,
    definition: FunnelDefinition,
    rng: DateRange,
    filters: Sequence[Filter],
) -> Iterator[tuple]:
    """The funnel's event rows (unsaved.event_rows) over the range and its window, a step-1
    event of a visit that does not pass the filters no longer step 1 (an event without a
    visitor, counted only as excluded, left out); all of them without filters."""
    start, end = rng.start_utc, rng.end_utc
    rows = event_rows(session, site_id, definition, start, end + definition.window)
    if not filters:
        yield from rows
        return
    allowed = passing_events(site_id, start, end, filters)
    for row in rows:
        event_id, visitor, at, mask = row[:4]
        if start <= at < end and event_id not in allowed:
            if not is_visitor(visitor):
                continue
            if mask & 1:
                row = (event_id, visitor, at, mask & ~1, *row[4:])
        yield row
