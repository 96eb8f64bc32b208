"""Which events could change a segment's rows: the rule every check of the store shares.

A segment's rows are the counted events of its span [start, end), each with its whole
visit. A new event of visitor `v` at `t` changes them exactly when `t` lies in the span
(a new row, or a change to its visit) or when it joins a visit of `v` that has rows there:
within GAP of that visit's first or last event. Only visits within GAP of the span's start
or end can be joined from outside it: those are the segment's edges (visitor, first, last),
stored beside its row. An event without a visitor (an `a:` id) is a visit of its own: it
changes only the span it lies in.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..sessions import GAP
from ..visitor_ids import is_visitor
from .models import StoreEdge

# Visitors per query when looking their edges up.
_VISITORS_PER_QUERY = 500


class Edge(NamedTuple):
    """A visit at a segment's edge: its visitor, first and last events' times."""

    visitor: str
    lo: datetime
    hi: datetime


class Seen(NamedTuple):
    """A new (or unseen) event: its visitor and time."""

    visitor: str
    at: datetime


def edges_of(table: pa.Table, start: datetime, end: datetime) -> list[Edge]:
    """The visits of a segment's rows within GAP of its span's start or end."""
    visits = table.filter(pc.field("has_visitor"))
    if visits.num_rows == 0:
        return []
    ends = pc.add(visits["visit_at"], visits["visit_duration_us"].cast(pa.duration("us")))
    grouped = (
        visits.select(["visitor", "visit_id", "visit_at"])
        .append_column("visit_end", ends)
        .group_by(["visitor", "visit_id"])
        .aggregate([("visit_at", "min"), ("visit_end", "max")])
    )
    found = []
    for row in grouped.to_pylist():
        lo, hi = row["visit_at_min"], row["visit_end_max"]
        if lo - GAP < start or hi + GAP >= end:
            found.append(Edge(row["visitor"], lo, hi))
    return found


def joins(edge: Edge, moment: datetime) -> bool:
    """Whether an event of the edge's visitor at `moment` could join its visit."""
    return edge.lo - GAP <= moment <= edge.hi + GAP


def changes(start: datetime, end: datetime, edges: Iterable[Edge], events: list[Seen]) -> bool:
    """Whether any of `events` could change the rows of a segment (span and edges)."""
    if any(start <= event.at < end for event in events):
        return True
    by_visitor: dict[str, list[Edge]] = defaultdict(list)
    for edge in edges:
        by_visitor[edge.visitor].append(edge)
    return any(
        joins(edge, event.at) for event in events for edge in by_visitor.get(event.visitor, ())
    )


def tokens_joined(
    session: Session, site_id: int, events: list[Seen], tokens: list[str] | None = None
) -> set[str]:
    """The segments (of `tokens` only, when given) with an edge that one of the site's
    `events` could join."""
    times: dict[str, list[datetime]] = defaultdict(list)
    for event in events:
        if is_visitor(event.visitor):
            times[event.visitor].append(event.at)
    visitors = sorted(times)
    found: set[str] = set()
    for offset in range(0, len(visitors), _VISITORS_PER_QUERY):
        chunk = visitors[offset : offset + _VISITORS_PER_QUERY]
        query = select(StoreEdge.token, StoreEdge.visitor_id, StoreEdge.lo, StoreEdge.hi).where(
            StoreEdge.site_id == site_id, StoreEdge.visitor_id.in_(chunk)
        )
        if tokens is not None:
            query = query.where(StoreEdge.token.in_(tokens))
        for token, visitor, lo, hi in session.execute(query):
            edge = Edge(visitor, lo, hi)
            if any(joins(edge, moment) for moment in times[visitor]):
                found.add(token)
    return found
