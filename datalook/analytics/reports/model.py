"""The reports' figures as dataclasses: what stats(), breakdown() and the JSON contract share.

Beside each dataclass that stats.json writes, its JSON fields (TOTALS_JSON, RULE_JSON,
SERIES_JSON, PAGE_JSON): the key, the attribute it is read from and its kind. serialise.py
writes the answer from these tables and the OpenAPI description builds its schemas from
them, so a field added here appears in both, in this order.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ..ranges import DateRange

#: Decimals of a ratio in JSON (JsonKind.RATIO).
RATIO_DECIMALS = 6


class JsonKind(Enum):
    """How a figure is written in JSON (and so how it is described)."""

    COUNT = "count"  # a whole number, 0 or more
    MONEY = "money"  # millionths, written as an exact decimal string in the site's currency
    RATIO = "ratio"  # a number, 0 or more, rounded to RATIO_DECIMALS
    FLAG = "flag"  # true or false
    TEXT = "text"  # a string


@dataclass(frozen=True)
class JsonField:
    """One key of a report's JSON object.

    `description` is Markdown for the API description; a `{name}` in it is a fact that the
    description fills in from a module this one cannot import (such as `{exact_limit}`).
    """

    name: str
    kind: JsonKind
    source: str | None = None  # the dataclass attribute it is read from; None: `name`
    description: str | None = None

    @property
    def attribute(self) -> str:
        """The dataclass attribute that holds the value."""
        return self.source or self.name


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
    # Visits (reports.visits): sessions that started in the range and hold a browser page
    # view; their browser page views, bounces and summed durations.
    visits: int = 0
    visit_pageviews: int = 0
    bounces: int = 0
    visit_duration_us: int = 0

    @property
    def views_per_visit(self) -> float:
        """The browser's page views per visit (0 without visits)."""
        return self.visit_pageviews / self.visits if self.visits else 0.0

    @property
    def bounce_rate(self) -> float:
        """Visits whose one event is their page view / visits (0 without visits)."""
        return self.bounces / self.visits if self.visits else 0.0

    @property
    def visit_duration_s(self) -> float:
        """A visit's average time from its first event to its last, in seconds."""
        return self.visit_duration_us / self.visits / 1_000_000 if self.visits else 0.0

    @property
    def conversion_rate(self) -> float:
        """Visitors who converted / visitors (0 without visitors)."""
        return self.converters / self.visitors if self.visitors else 0.0

    @property
    def without_visitor_share(self) -> float:
        """Share of the events that carry no visitor id."""
        return self.events_without_visitor / self.events if self.events else 0.0


#: stats.json's `totals` and `previous`.
TOTALS_JSON = (
    JsonField("events", JsonKind.COUNT),
    JsonField("pageviews", JsonKind.COUNT),
    JsonField("clicks", JsonKind.COUNT),
    JsonField("custom", JsonKind.COUNT),
    JsonField("conversions", JsonKind.COUNT, description="Success events."),
    JsonField(
        "visitors",
        JsonKind.COUNT,
        description="Distinct visitors (`success_user_id`, or the browser's cookieless daily "
        "id); events without one are not visitors.",
    ),
    JsonField(
        "visitors_exact",
        JsonKind.FLAG,
        description="False when `visitors` is a HyperLogLog estimate (error within about 1%): "
        "the range holds more than {exact_limit} events (the server's default limit).",
    ),
    JsonField("revenue", JsonKind.MONEY, "revenue_micros"),
    JsonField("events_without_visitor", JsonKind.COUNT),
    JsonField(
        "visits",
        JsonKind.COUNT,
        description="Visits: sessions (a visitor's events with no gap over 30 minutes) that "
        "started in the range and hold at least one page view sent by the browser. With "
        "filters, the visits with an event in the range that passes every filter.",
    ),
    JsonField(
        "views_per_visit",
        JsonKind.RATIO,
        description="The browser's page views of those visits (all of each visit's) / "
        "`visits` (0 without visits).",
    ),
    JsonField(
        "bounce_rate",
        JsonKind.RATIO,
        description="Visits with one page view and no other event (a server event of the "
        "same visitor within the visit counts as another) / `visits` (0 without visits).",
    ),
    JsonField(
        "visit_duration_s",
        JsonKind.RATIO,
        description="A visit's average time from its first event to its last, in seconds "
        "(a bounce lasts 0; 0 without visits).",
    ),
)


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


#: One item of stats.json's `rules`.
RULE_JSON = (
    JsonField("name", JsonKind.TEXT),
    JsonField("conversions", JsonKind.COUNT),
    JsonField("converters", JsonKind.COUNT, description="Distinct visitors."),
    JsonField(
        "conversion_rate",
        JsonKind.RATIO,
        description=f"converters / visitors of the range ({RATIO_DECIMALS} decimals; 0 without "
        "visitors).",
    ),
    JsonField("revenue", JsonKind.MONEY, "revenue_micros"),
)


@dataclass(frozen=True)
class SeriesPoint:
    """One bucket of the chart."""

    label: str
    events: int
    visitors: int
    conversions: int
    revenue_micros: int


#: One item of stats.json's `series`.
SERIES_JSON = (
    JsonField("start", JsonKind.TEXT, "label"),
    JsonField("events", JsonKind.COUNT),
    JsonField("visitors", JsonKind.COUNT),
    JsonField("conversions", JsonKind.COUNT),
    JsonField("revenue", JsonKind.MONEY, "revenue_micros"),
)


@dataclass(frozen=True)
class PageRow:
    """One page path's events and visitors."""

    page_path: str
    events: int
    visitors: int


#: One item of stats.json's `pages`.
PAGE_JSON = (
    JsonField("page_path", JsonKind.TEXT),
    JsonField("events", JsonKind.COUNT),
    JsonField("visitors", JsonKind.COUNT),
)


@dataclass(frozen=True)
class BreakdownRow:
    """One value of a property key."""

    value: str
    events: int
    conversions: int
    revenue_micros: int


@dataclass(frozen=True)
class DimensionRow:
    """One value of a dimension in breakdown.json."""

    value: str
    visitors: int
    visits: int
    pageviews: int
    conversions: int
    converters: int
    revenue_micros: int

    @property
    def conversion_rate(self) -> float:
        """Visitors of the row who converted / visitors of the row (0 without visitors)."""
        return self.converters / self.visitors if self.visitors else 0.0


#: One item of breakdown.json's `rows`.
DIMENSION_ROW_JSON = (
    JsonField(
        "value",
        JsonKind.TEXT,
        description="The dimension's value; `(none)` for events without one, `(not recorded)` "
        "for events stored before the server recorded this dimension.",
    ),
    JsonField(
        "visitors",
        JsonKind.COUNT,
        description="Distinct visitors with an event of this value (events without a "
        "visitor id are never visitors).",
    ),
    JsonField(
        "visits",
        JsonKind.COUNT,
        description="Visits (sessions: a visitor's events with no gap over 30 minutes) with "
        "an event of this value.",
    ),
    JsonField("pageviews", JsonKind.COUNT, description="Page views of this value."),
    JsonField("conversions", JsonKind.COUNT, description="Success events of this value."),
    JsonField(
        "conversion_rate",
        JsonKind.RATIO,
        description=f"Visitors of the row with a success event of this value / `visitors` "
        f"({RATIO_DECIMALS} decimals; 0 without visitors).",
    ),
    JsonField(
        "revenue",
        JsonKind.MONEY,
        "revenue_micros",
        description="The exact sum of the values of those success events.",
    ),
)


@dataclass(frozen=True)
class DimensionBreakdown:
    """One page of a dimension's values over a range, after the filters."""

    range: DateRange
    dimension: str
    filters: tuple[str, ...]
    rows: list[DimensionRow]
    total_rows: int
    limit: int
    offset: int
    # False: `visitors` (and so the conversion rates) are HyperLogLog estimates (rolled_rows).
    visitors_exact: bool = True


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
