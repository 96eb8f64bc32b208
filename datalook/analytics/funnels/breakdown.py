"""A funnel broken down by the channel or source of the visit where each visitor entered.

Each visitor counts once, as in the funnel itself (matching.visitor_progress: the furthest
step reached, from the earliest step-1 event that reaches that far). That step-1 event lies
in one visit (a session: the visitor's events without a gap over 30 minutes), and the
visitor counts under that visit's value: the channel or source of the visit's first event
(reports.raw_events, as breakdown.json and the filters read a visit). The rows add up to
the funnel's steps.

Like a funnel with filters, it reads the range's events (the kind index and the saved
funnel's attempts do not know visits): the matching rows once, and the range's events once
to place them in visits.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from ...acquisition.dimensions import NONE
from ..reports.raw_events import range_events, value_of
from ..visitor_ids import is_visitor
from .definition import FunnelDefinition
from .matching import Progress, visitor_progress
from .report import FunnelAnswer, FunnelReport, summarise

#: The dimensions a funnel can be broken down by.
DIMENSIONS = ("channel", "source")


def broken_down(
    session: Session,
    site_id: int,
    definition: FunnelDefinition,
    rows: Iterable[tuple],
    start: datetime,
    end: datetime,
    dimension: str,
) -> tuple[FunnelReport, list[tuple[str, FunnelReport]]]:
    """The funnel of `rows` (event_rows' tuples, grouped by visitor in time order) over
    [start, end), and per value of `dimension` the funnel of the visitors who entered in a
    visit with that value, most step-1 visitors first, then by value."""
    grouped: dict[str, list[tuple]] = defaultdict(list)
    excluded = 0
    for row in rows:
        event_id, visitor, at, mask, value = row[:5]
        if not is_visitor(visitor):
            # Counted as the funnel counts them: the range's events that match a step.
            excluded += bool(mask) and start <= at < end
            continue
        grouped[visitor].append((at, event_id, mask, value))
    progress = visitor_progress(definition, grouped, start, end)
    entries = _entry_values(site_id, progress, start, end, dimension)
    per_value: dict[str, list[Progress]] = defaultdict(list)
    for visitor, reached in progress.items():
        per_value[entries.get((visitor, reached.times[0]), NONE)].append(reached)
    overall = summarise(definition, progress.values(), excluded)
    rows_out = [(value, summarise(definition, found, 0)) for value, found in per_value.items()]
    rows_out.sort(key=lambda item: (-item[1].steps[0].visitors, item[0]))
    return overall, rows_out


def _entry_values(
    site_id: int,
    progress: dict[str, Progress],
    start: datetime,
    end: datetime,
    dimension: str,
) -> dict[tuple[str, datetime], str]:
    """(visitor, time of the step-1 event) → the dimension's value of that event's visit.

    A visitor's events at one instant share a visit, so the time names the visit."""
    wanted = {(visitor, reached.times[0]) for visitor, reached in progress.items()}
    found: dict[tuple[str, datetime], str] = {}
    if not wanted:
        return found
    # Visits that began before the range are read back to their first event.
    for event in range_events(site_id, start, end, dimensions=(dimension,), visits=True):
        key = (event.visitor, event.at)
        if key in wanted and key not in found:
            value = value_of(dimension, event)
            found[key] = NONE if value is None else value
    return found


def broken_down_json(
    answer: FunnelAnswer, rows: list[tuple[str, FunnelReport]], dimension: str, currency: str
) -> dict:
    """funnel.json's answer with `breakdown`: the dimension and per value its steps."""
    return {
        **answer.as_json(currency),
        "breakdown": {
            "dimension": dimension,
            "rows": [
                {"value": value, "steps": report.as_json(currency)["steps"]}
                for value, report in rows
            ],
        },
    }
