"""Headline totals of a range and one row per success rule, from the hourly rollups."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select

from ...extensions import db
from ...models import SuccessRule
from ..ranges import DateRange
from ..rollups.models import (
    HourlyRule,
    HourlyTotals,
    RuleDisplay,
)
from .model import RuleRow, Totals
from .spans import covering, money_micros, raw_acc, split
from .visitors import ExactVisitors, distinct_visitors, estimates, exact_visitors

TOTAL_COLUMNS = ("events", "pageviews", "clicks", "custom", "conversions")


def exact_limit() -> int:
    """Largest number of events in a range whose visitors are counted exactly."""
    return int(current_app.config["ANALYTICS_EXACT_EVENTS"])


def _counts(site_id: int, start: datetime, end: datetime) -> dict:
    """Event counts, conversions, revenue and events without visitor in [start, end)."""
    inner, edges = split(start, end)
    out = dict.fromkeys((*TOTAL_COLUMNS, "revenue_micros", "events_without_visitor"), 0)
    if inner:
        t = HourlyTotals
        row = db.session.execute(
            select(
                *[func.coalesce(func.sum(getattr(t, name)), 0) for name in TOTAL_COLUMNS],
                func.coalesce(func.sum(t.revenue_units), 0),
                func.coalesce(func.sum(t.revenue_rest), 0),
                func.coalesce(func.sum(t.without_visitor), 0),
            ).where(t.site_id == site_id, t.hour >= inner[0], t.hour < inner[1])
        ).one()
        for name, value in zip(TOTAL_COLUMNS, row[:5], strict=True):
            out[name] = int(value)
        out["revenue_micros"] = money_micros(row[5], row[6])
        out["events_without_visitor"] = int(row[7])
    if edges:
        acc = raw_acc(site_id, edges)
        for values in acc.totals.values():
            for index, name in enumerate(TOTAL_COLUMNS):
                out[name] += values[index]
            out["revenue_micros"] += money_micros(values[5], values[6])
            out["events_without_visitor"] += values[7]
    return out


def totals_of(
    site_id: int, rng: DateRange, limit: int, buckets: list | None = None, gen: int | None = None
) -> tuple[Totals, ExactVisitors | None]:
    """Totals of a range; with `buckets`, the exact visitor sets too (if the range is small
    enough), for the rules, pages and chart."""
    counts = _counts(site_id, rng.start_utc, rng.end_utc)
    if counts["events"] <= limit and buckets is None:
        visitors, converters = distinct_visitors(site_id, rng.start_utc, rng.end_utc)
        return Totals(**counts, visitors=visitors, converters=converters), None
    if counts["events"] <= limit and buckets is not None:
        found = exact_visitors(site_id, rng.start_utc, rng.end_utc, buckets)
        return Totals(
            **counts, visitors=len(found.everyone), converters=len(found.converters)
        ), found
    estimated = estimates(site_id, ["", "c"], rng.start_utc, rng.end_utc, gen)
    return Totals(
        **counts, visitors=estimated[""], converters=estimated["c"], visitors_exact=False
    ), None


def rule_displays(site_id: int) -> dict[str, RuleDisplay]:
    """The display settings of a site's rules, by name."""
    rows = db.session.scalars(select(RuleDisplay).where(RuleDisplay.site_id == site_id))
    return {row.name: row for row in rows}


def rules_of(
    site_id: int, rng: DateRange, totals: Totals, exact: ExactVisitors | None, gen: int
) -> list:
    """One row per success rule: registered ones, and any with conversions in the range."""
    r = HourlyRule
    covered, edges = covering(r, rng.start_utc, rng.end_utc)
    figures: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    if covered is not None:
        rows = db.session.execute(
            select(
                r.name, func.sum(r.conversions), func.sum(r.revenue_units), func.sum(r.revenue_rest)
            )
            .where(r.site_id == site_id, covered)
            .group_by(r.name)
        )
        for name, conversions, units, rest in rows:
            figures[name] = [int(conversions), money_micros(units, rest)]
    if edges:
        for (_s, span, _h, name), values in raw_acc(site_id, edges).rules.items():
            if span == 1:
                figures[name][0] += values[0]
                figures[name][1] += money_micros(values[1], values[2])
    # A name sent only with test keys is no rule of the reports (no live event carries it).
    registered = db.session.scalars(
        select(SuccessRule.name)
        .where(SuccessRule.site_id == site_id, SuccessRule.listed())
        .order_by(SuccessRule.first_seen_at, SuccessRule.name)
    ).all()
    names = list(dict.fromkeys([*registered, *sorted(figures)]))
    if exact is not None:
        converters = {name: len(exact.rules.get(name, ())) for name in names}
    else:
        dims = [f"r:{n}" for n in names]
        estimated = estimates(site_id, dims, rng.start_utc, rng.end_utc, gen)
        converters = {name: estimated[f"r:{name}"] for name in names}
    displays = rule_displays(site_id)
    out = []
    for name in names:
        conversions, revenue = figures.get(name, (0, 0))
        display = displays.get(name)
        rate = converters[name] / totals.visitors if totals.visitors else 0.0
        out.append(
            RuleRow(
                name=name,
                label=(display.label if display and display.label else name),
                archived=bool(display and display.archived),
                conversions=conversions,
                converters=converters[name],
                conversion_rate=rate,
                revenue_micros=revenue,
            )
        )
    return out
