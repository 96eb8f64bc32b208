"""The reports' figures as dataclasses: what stats(), breakdown() and the JSON contract share."""

from __future__ import annotations

from dataclasses import dataclass

from ..ranges import DateRange


@dataclass(frozen=True)
class Totals:
    """Headline figures of one range."""

    events: int = 0
    pageviews: int = 0
    clicks: int = 0
    custom: int = 0
    conversions: int = 0
    revenue_micros: int = 0
    events_without_visitor: int = 0
    visitors: int = 0
    converters: int = 0
    visitors_exact: bool = True

    @property
    def conversion_rate(self) -> float:
        """Visitors who converted / visitors (0 without visitors)."""
        return self.converters / self.visitors if self.visitors else 0.0

    @property
    def without_visitor_share(self) -> float:
        """Share of the events that carry no visitor id."""
        return self.events_without_visitor / self.events if self.events else 0.0


@dataclass(frozen=True)
class RuleRow:
    """One success rule's figures in the range."""

    name: str
    label: str
    archived: bool
    conversions: int
    converters: int
    conversion_rate: float
    revenue_micros: int

    @property
    def average_micros(self) -> int:
        """Average value of a conversion, in millionths (rounded down)."""
        return self.revenue_micros // self.conversions if self.conversions else 0


@dataclass(frozen=True)
class SeriesPoint:
    """One bucket of the chart."""

    label: str
    events: int
    visitors: int
    conversions: int
    revenue_micros: int


@dataclass(frozen=True)
class PageRow:
    """One page path's events and visitors."""

    page_path: str
    events: int
    visitors: int


@dataclass(frozen=True)
class BreakdownRow:
    """One value of a property key."""

    value: str
    events: int
    conversions: int
    revenue_micros: int


@dataclass(frozen=True)
class Stats:
    """Everything the dashboard and stats.json show for one range."""

    range: DateRange
    totals: Totals
    previous: Totals
    rules: list[RuleRow]
    series: list[SeriesPoint]
    pages: list[PageRow]
    granularity: str
