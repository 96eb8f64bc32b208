"""The dashboard's row of top figures: one list of (key, label, format) read from the
totals as stats.json writes them, each beside its change from the previous period.

A figure shows when the report provides its key, so a figure added to stats.json's totals
(model.TOTALS_JSON) appears here by being listed once below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..analytics.reports import model, serialise
from ..analytics.reports.model import Totals
from . import numbers


@dataclass(frozen=True)
class Figure:
    """One top figure: its key in the totals, its label, how it is formatted, and whether a
    fall is good news."""

    key: str
    label: str
    format: str  # count, decimal, percent, duration or money
    lower_is_better: bool = False


FIGURES = (
    Figure("visitors", "Unique visitors", "count"),
    Figure("visits", "Visits", "count"),
    Figure("pageviews", "Pageviews", "count"),
    Figure("views_per_visit", "Views per visit", "decimal"),
    Figure("bounce_rate", "Bounce rate", "percent", lower_is_better=True),
    Figure("visit_duration_s", "Visit duration", "duration"),
    Figure("conversions", "Conversions", "count"),
    Figure("conversion_rate", "Conversion rate", "percent"),
    Figure("revenue", "Revenue", "money"),
)


@dataclass(frozen=True)
class ShownFigure:
    """A figure as the page shows it."""

    key: str
    label: str
    text: str
    previous_text: str
    change: numbers.Change


def serialised(totals: Totals, currency: str) -> dict[str, Any]:
    """The totals as stats.json writes them, and the conversion rate."""
    found = serialise.row_json(model.TOTALS_JSON, totals, currency)
    found.setdefault("conversion_rate", totals.conversion_rate)
    return found


def formatted(value: Any, kind: str, currency: str) -> str:
    """One figure's value for people."""
    if kind == "money":
        return numbers.money(value, currency)
    if kind == "percent":
        return numbers.pct(value)
    if kind == "duration":
        return numbers.duration(value)
    if kind == "decimal":
        return numbers.decimal(value)
    return numbers.num(value)


def shown_figures(
    totals: Totals, previous: Totals, currency: str, comparable: bool
) -> list[ShownFigure]:
    """The figures the totals provide, in FIGURES order; `comparable`: whether a change
    from the previous period means anything (not for a range that has not started)."""
    now, before = serialised(totals, currency), serialised(previous, currency)
    approx = "" if totals.visitors_exact else "≈"
    shown = []
    for figure in FIGURES:
        if figure.key not in now:
            continue
        text = formatted(now[figure.key], figure.format, currency)
        if figure.key == "visitors":
            text = approx + text
        delta = numbers.change(
            now[figure.key], before.get(figure.key), comparable, figure.lower_is_better
        )
        previous_text = formatted(before.get(figure.key), figure.format, currency)
        shown.append(ShownFigure(figure.key, figure.label, text, previous_text, delta))
    return shown
