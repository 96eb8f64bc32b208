"""breakdown.json: a dimension's values over a range, with their visitors, visits, page
views, conversions, conversion rate and revenue, counted exactly from the range's events.

Per value (raw_events.value_of; after the filters): visitors are the distinct visitors with
an event of that value; visits the visits with one; pageviews and conversions the page
views and success events of that value; converters the visitors with a success event of
that value, and the conversion rate converters / visitors; revenue the exact sum of those
success events' values. Rows are ordered by visitors (most first), then by value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ...acquisition.dimensions import NONE, Filter
from ...models import Site
from ..ranges import DateRange
from .model import DimensionBreakdown, DimensionRow
from .raw_events import RawEvent, range_events, value_of


@dataclass
class _Figures:
    """What one value adds up to while the events are read."""

    visitors: set = field(default_factory=set)
    visits: set = field(default_factory=set)
    converters: set = field(default_factory=set)
    events: int = 0
    pageviews: int = 0
    conversions: int = 0
    revenue_micros: int = 0

    def add(self, event: RawEvent) -> None:
        """Count one event of this value."""
        self.events += 1
        success = event.kind == "success"
        if event.kind == "pageview":
            self.pageviews += 1
        elif success:
            self.conversions += 1
            self.revenue_micros += event.micros or 0
        if event.has_visitor:
            self.visitors.add(event.visitor)
            if event.visit is not None:
                self.visits.add(id(event.visit))
            if success:
                self.converters.add(event.visitor)

    def row(self, value: str) -> DimensionRow:
        """The row of this value."""
        return DimensionRow(
            value=value,
            visitors=len(self.visitors),
            visits=len(self.visits),
            pageviews=self.pageviews,
            conversions=self.conversions,
            converters=len(self.converters),
            revenue_micros=self.revenue_micros,
        )


def figures_by_value(events: Sequence[RawEvent], dimension: str) -> dict[str, _Figures]:
    """Each value of the dimension among `events` (NONE for none) and its figures."""
    found: dict[str, _Figures] = {}
    for event in events:
        value = value_of(dimension, event)
        key = NONE if value is None else value
        figures = found.get(key)
        if figures is None:
            figures = found[key] = _Figures()
        figures.add(event)
    return found


def dimension_rows(
    site: Site, rng: DateRange, dimension: str, filters: Sequence[Filter], limit: int, offset: int
) -> DimensionBreakdown:
    """One page of the dimension's rows over the range, after the filters."""
    events = range_events(
        site.id, rng.start_utc, rng.end_utc, filters, dimensions=[dimension], visits=True
    )
    rows = [figures.row(value) for value, figures in figures_by_value(events, dimension).items()]
    rows.sort(key=lambda row: (-row.visitors, row.value))
    return DimensionBreakdown(
        range=rng,
        dimension=dimension,
        filters=tuple(str(f) for f in filters),
        rows=rows[offset : offset + limit],
        total_rows=len(rows),
        limit=limit,
        offset=offset,
    )


def dimension_tables(
    site: Site, rng: DateRange, dimensions: Sequence[str], filters: Sequence[Filter], limit: int
) -> dict[str, DimensionBreakdown]:
    """The first `limit` rows of several dimensions over the range, after the filters: the
    rows dimension_rows gives, from one read of the range's events (the dashboard's panels)."""
    events = range_events(
        site.id, rng.start_utc, rng.end_utc, filters, dimensions=dimensions, visits=True
    )
    found = {}
    for dimension in dict.fromkeys(dimensions):
        rows = [f.row(value) for value, f in figures_by_value(events, dimension).items()]
        rows.sort(key=lambda row: (-row.visitors, row.value))
        found[dimension] = DimensionBreakdown(
            range=rng,
            dimension=dimension,
            filters=tuple(str(f) for f in filters),
            rows=rows[:limit],
            total_rows=len(rows),
            limit=limit,
            offset=0,
        )
    return found
