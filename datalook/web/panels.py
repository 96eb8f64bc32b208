"""The dashboard's panels and filters: which dimensions each panel shows as tabs, their rows
(read from the breakdown report that breakdown.json answers), and the filter chips.

The dimension names are acquisition.dimensions.DIMENSIONS (one list); the panels show those
the reports record (raw_events.SUPPORTED), so regions and cities appear when they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from werkzeug.datastructures import MultiDict

from ..acquisition.dimensions import (
    CONTAINS,
    DIMENSIONS,
    EQUALS,
    NOT_EQUALS,
    PROPERTY_PREFIX,
    Filter,
    FilterError,
    parse_filter,
    property_key,
)
from ..analytics.ranges import DateRange
from ..analytics.reports.dimension_rows import dimension_tables
from ..analytics.reports.model import DimensionBreakdown, RuleRow
from ..analytics.reports.raw_events import SUPPORTED
from ..models import Site

#: Rows a panel shows; "Details" opens the rest.
PANEL_ROWS = 8

#: A dimension's name for people: (the tab, one value's kind in a filter chip).
NAMES: dict[str, tuple[str, str]] = {
    "channel": ("Channels", "Channel"),
    "source": ("Sources", "Source"),
    "medium": ("Medium", "Medium"),
    "campaign": ("Campaigns", "Campaign"),
    "term": ("Term", "Term"),
    "content": ("Content", "Content"),
    "referrer": ("Referrers", "Referrer"),
    "page": ("Top pages", "Page"),
    "entry_page": ("Entry pages", "Entry page"),
    "exit_page": ("Exit pages", "Exit page"),
    "country": ("Countries", "Country"),
    "region": ("Regions", "Region"),
    "city": ("Cities", "City"),
    "device": ("Devices", "Device"),
    "browser": ("Browsers", "Browser"),
    "os": ("Operating systems", "OS"),
    "rule": ("Goals", "Goal"),
}

#: The filter form's operators: (URL operator, what people read).
OPERATORS = ((EQUALS, "is"), (NOT_EQUALS, "is not"), (CONTAINS, "contains"))
_OPERATOR_WORDS = dict(OPERATORS)


def tab_name(dimension: str) -> str:
    """A dimension as a tab or column heading ("Entry pages", "plan")."""
    key = property_key(dimension)
    return key if key is not None else NAMES[dimension][0]


def value_kind(dimension: str) -> str:
    """A dimension as one value's kind ("Entry page", "Property plan")."""
    key = property_key(dimension)
    return f"Property {key}" if key is not None else NAMES[dimension][1]


def filter_dimensions() -> list[tuple[str, str]]:
    """The dimensions a filter may use, as (name, label), in DIMENSIONS order."""
    return [(name, NAMES[name][1]) for name in DIMENSIONS if name in SUPPORTED]


@dataclass(frozen=True)
class Panel:
    """One panel: its title, the URL parameter of its tab, its tabs' dimensions."""

    key: str
    title: str
    tabs: tuple[str, ...]


#: The panels, in the order the grid shows them (Goals and Properties are built apart).
PANELS = tuple(
    Panel(key, title, tuple(name for name in tabs if name in SUPPORTED))
    for key, title, tabs in (
        ("sources", "Sources", ("channel", "source", "campaign", "medium", "term", "content")),
        ("pages", "Pages", ("page", "entry_page", "exit_page")),
        ("locations", "Locations", ("country", "region", "city")),
        ("devices", "Devices", ("device", "browser", "os")),
    )
)


@dataclass(frozen=True)
class PanelRow:
    """One row of a panel: the value, its label, and its figures."""

    value: str
    label: str
    visitors: int
    conversions: int
    conversion_rate: float
    revenue_micros: int


@dataclass(frozen=True)
class ShownPanel:
    """A panel as the page shows it: the chosen tab's dimension and its top rows."""

    key: str
    title: str
    tabs: tuple[str, ...]
    dimension: str
    rows: list[PanelRow]
    total_rows: int
    visitors_exact: bool = True  # False: the visitors are estimates (marked ≈)

    @property
    def most(self) -> int:
        """The largest visitors of the rows (the full bar)."""
        return max((row.visitors for row in self.rows), default=0)

    def share(self, row: PanelRow) -> float:
        """The row's visitors as a share of the largest (the bar's length, 0 to 100)."""
        return round(100 * row.visitors / self.most, 1) if self.most else 0.0


def _shown(report: DimensionBreakdown) -> ShownPanel:
    """A breakdown's rows as a panel's (title and tabs filled in by the caller)."""
    rows = [
        PanelRow(r.value, r.value, r.visitors, r.conversions, r.conversion_rate, r.revenue_micros)
        for r in report.rows
    ]
    shown = ShownPanel("", "", (), report.dimension, rows, report.total_rows)
    return replace(shown, visitors_exact=report.visitors_exact)


def _dimension(panel: Panel, args: Mapping[str, str]) -> str:
    """The dimension of the panel's tab that the URL asks for (its first tab else)."""
    asked = args.get(panel.key, "")
    return asked if asked in panel.tabs else panel.tabs[0]


def shown_panels(
    site: Site,
    rng: DateRange,
    filters: Sequence[Filter],
    args: Mapping[str, str],
    prop_key: str | None,
) -> list[ShownPanel]:
    """The grid's panels from the breakdown report, each on the tab the URL asks for, all
    read at once; with `prop_key`, the Properties panel last (a "(none)" row holds the
    events without the key, so its rows add up to the totals)."""
    panels = [panel for panel in PANELS if panel.tabs]
    dimensions = [_dimension(panel, args) for panel in panels]
    if prop_key is not None:
        dimensions.append(f"{PROPERTY_PREFIX}{prop_key}")
    tables = dimension_tables(site, rng, dimensions, filters, PANEL_ROWS)
    shown = []
    for panel, dimension in zip(panels, dimensions, strict=False):
        found = _shown(tables[dimension])
        shown.append(replace(found, key=panel.key, title=panel.title, tabs=panel.tabs))
    if prop_key is not None:
        found = _shown(tables[dimensions[-1]])
        shown.append(replace(found, key="prop", title="Properties"))
    return shown


def goals_panel(rules: Sequence[RuleRow]) -> ShownPanel:
    """The Goals panel from the report's success rules (their display names, without the
    archived ones): converting visitors, conversions, rate of all visitors, revenue."""
    rows = [
        PanelRow(r.name, r.label, r.converters, r.conversions, r.conversion_rate, r.revenue_micros)
        for r in rules
        if not r.archived and (r.conversions or r.converters)
    ]
    rows.sort(key=lambda row: (-row.visitors, -row.conversions, row.value))
    return ShownPanel("goals", "Goals", ("rule",), "rule", rows[:PANEL_ROWS], len(rows))


def chosen_key(keys: Sequence[str], asked: str) -> str | None:
    """The property key the Properties panel shows: the asked one, else the first; None
    when no event carries properties."""
    if not keys:
        return None
    return asked if asked in keys else keys[0]


@dataclass(frozen=True)
class Chip:
    """One active filter as a removable chip."""

    text: str
    remove_args: MultiDict


def chips(filters: Sequence[Filter], args: MultiDict) -> list[Chip]:
    """The active filters, each with the URL arguments that remove it."""
    texts = args.getlist("filter")
    found = []
    for index, applied in enumerate(filters):
        remaining = MultiDict(args)
        remaining.setlist("filter", [t for i, t in enumerate(texts) if i != index])
        words = _OPERATOR_WORDS[applied.op]
        found.append(Chip(f"{value_kind(applied.dimension)} {words} {applied.value}", remaining))
    return found


def with_filter(args: MultiDict, dimension: str, op: str, value: str) -> MultiDict:
    """The URL arguments with one more filter (FilterError when it cannot be used); a filter
    already there is not added twice."""
    text = str(parse_filter(f"{dimension}{op}{value}"))
    changed = MultiDict(args)
    present = changed.getlist("filter")
    if text not in present:
        changed.setlist("filter", [*present, text])
    return changed


def form_filter(args: MultiDict) -> MultiDict | None:
    """The URL arguments after the add-a-filter form (fields fdim, fop, fval), its fields
    removed; None when the form was not sent. FilterError when the filter is unusable."""
    if "fdim" not in args:
        return None
    op = args.get("fop", EQUALS)
    if op not in _OPERATOR_WORDS:
        raise FilterError("unknown_operator", "Choose is, is not or contains.")
    base = MultiDict(args)
    for name in ("fdim", "fop", "fval", "fkey"):
        base.poplist(name)
    dimension = args.get("fdim", "")
    if dimension == "prop:":
        dimension = f"prop:{args.get('fkey', '').strip()}"
    return with_filter(base, dimension, op, args.get("fval", ""))
