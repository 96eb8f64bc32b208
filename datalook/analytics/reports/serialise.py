"""The reports as the stats.json contract and as CSV tables.

stats.json's rows are written from the JSON field tables of model.py, the same tables that
the OpenAPI description builds their schemas from.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from fractions import Fraction

from ...models import Site
from ..backlog import Freshness
from ..money import decimal_string
from . import model  # its JSON field tables, read when called (as the API description does)
from .attribution import Attribution
from .model import (
    RATIO_DECIMALS,
    BreakdownRow,
    DimensionBreakdown,
    JsonField,
    JsonKind,
    Stats,
    Totals,
)


def _value(field: JsonField, row: object, currency: str) -> object:
    """One field of a row as JSON writes it: money as an exact decimal string, ratios
    rounded."""
    value = getattr(row, field.attribute)
    if field.kind is JsonKind.MONEY:
        return decimal_string(value, currency)
    if field.kind is JsonKind.RATIO:
        return round(value, RATIO_DECIMALS)
    return value


def row_json(fields: Iterable[JsonField], row: object, currency: str) -> dict:
    """One row (a dataclass of model.py) as the JSON object its field table describes."""
    return {field.name: _value(field, row, currency) for field in fields}


def _totals_json(totals: Totals, currency: str) -> dict:
    """The totals object of stats.json."""
    return row_json(model.TOTALS_JSON, totals, currency)


def stats_json(site: Site, stats: Stats, freshness: Freshness) -> dict:
    """The documented JSON body of GET /sites/<id>/stats.json (`freshness`: how current the
    summaries read were)."""
    currency = site.currency
    return {
        "site": site.domain,
        "timezone": stats.range.tz.key,  # the zone that cut the days (UTC for an unknown one)
        "currency": currency,
        "from": stats.range.first.isoformat(),
        "to": stats.range.last.isoformat(),
        "totals": _totals_json(stats.totals, currency),
        "previous": _totals_json(stats.previous, currency),
        "rules": [row_json(model.RULE_JSON, rule, currency) for rule in stats.rules],
        "series": [row_json(model.SERIES_JSON, point, currency) for point in stats.series],
        "pages": [row_json(model.PAGE_JSON, page, currency) for page in stats.pages],
        "freshness": freshness.as_json(),
    }


def breakdown_json(site: Site, report: DimensionBreakdown) -> dict:
    """The documented JSON body of GET /sites/<id>/breakdown.json."""
    currency = site.currency
    return {
        "site": site.domain,
        "timezone": report.range.tz.key,
        "currency": currency,
        "from": report.range.first.isoformat(),
        "to": report.range.last.isoformat(),
        "dimension": report.dimension,
        "filters": list(report.filters),
        "rows": [row_json(model.DIMENSION_ROW_JSON, row, currency) for row in report.rows],
        "total_rows": report.total_rows,
        "visitors_exact": report.visitors_exact,
        "limit": report.limit,
        "offset": report.offset,
    }


def _share(value: Fraction) -> int | float:
    """A number of conversions: whole, or a linear share rounded to 4 decimals."""
    return int(value) if value.denominator == 1 else round(float(value), 4)


def attribution_json(site: Site, report: Attribution) -> dict:
    """The documented JSON body of GET /sites/<id>/attribution.json."""
    currency = site.currency
    hours = int(report.lookback.total_seconds() // 3600)
    return {
        "site": site.domain,
        "timezone": report.range.tz.key,
        "currency": currency,
        "from": report.range.first.isoformat(),
        "to": report.range.last.isoformat(),
        "rule": report.rule,
        "model": report.model,
        "dimension": report.dimension,
        "lookback": f"{hours // 24}d" if hours % 24 == 0 else f"{hours}h",
        "filters": list(report.filters),
        "rows": [
            {
                "value": value,
                "conversions": _share(credit.conversions),
                "converters": credit.converters,
                "revenue": decimal_string(credit.revenue_micros, currency),
            }
            for value, credit in report.rows
        ],
        "unattributed": {
            "conversions": report.unattributed_conversions,
            "revenue": decimal_string(report.unattributed_micros, currency),
        },
    }


# The CSV reports: name -> (header, rows of one Stats).
REPORTS = ("totals", "rules", "series", "pages", "breakdown")


# What makes a spreadsheet run a cell as a formula: these first characters (ASCII and their
# fullwidth forms, which some spreadsheets fold to ASCII), also after leading blanks.
_FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_BLANKS = " \t\r\n\u00a0\u3000"


def safe_cell(value: object) -> object:
    """Keep a spreadsheet from running a cell as a formula: prefix `'` to text that starts
    (after any blanks) with =, +, - or @ (or a fullwidth one), or with a tab or CR."""
    if not isinstance(value, str) or not value:
        return value
    if value[0] in "\t\r" or value.lstrip(_BLANKS)[:1] in _FORMULA_STARTS:
        return "'" + value
    return value


def csv_text(
    report: str, site: Site, stats: Stats, breakdown: list[BreakdownRow] | None = None
) -> str:
    """One report as CSV text (money as exact decimal strings)."""
    cur = site.currency
    out = io.StringIO()
    writer = csv.writer(out)
    if report == "totals":
        writer.writerow(["period", "from", "to", *_totals_json(stats.totals, cur)])
        for name, rng, totals in (
            ("current", stats.range, stats.totals),
            ("previous", stats.range.previous(), stats.previous),
        ):
            values = _totals_json(totals, cur).values()
            writer.writerow([name, rng.first.isoformat(), rng.last.isoformat(), *values])
    elif report == "rules":
        writer.writerow(
            ["name", "label", "archived", "conversions", "converters", "conversion_rate", "revenue"]
        )
        for rule in stats.rules:
            writer.writerow(
                [
                    safe_cell(rule.name),
                    safe_cell(rule.label),
                    rule.archived,
                    rule.conversions,
                    rule.converters,
                    f"{rule.conversion_rate:.6f}",
                    decimal_string(rule.revenue_micros, cur),
                ]
            )
    elif report == "series":
        writer.writerow(["start", "events", "visitors", "conversions", "revenue"])
        for p in stats.series:
            revenue = decimal_string(p.revenue_micros, cur)
            writer.writerow([p.label, p.events, p.visitors, p.conversions, revenue])
    elif report == "pages":
        writer.writerow(["page_path", "events", "visitors"])
        for page in stats.pages:
            writer.writerow([safe_cell(page.page_path), page.events, page.visitors])
    elif report == "breakdown":
        writer.writerow(["value", "events", "conversions", "revenue"])
        for row in breakdown or []:
            revenue = decimal_string(row.revenue_micros, cur)
            writer.writerow([safe_cell(row.value), row.events, row.conversions, revenue])
    else:
        raise ValueError(report)
    return out.getvalue()


def dimension_csv(site: Site, report: DimensionBreakdown) -> str:
    """A dimension's rows (breakdown.json's fields) as CSV text, money as exact decimals."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([report.dimension, *(f.name for f in model.DIMENSION_ROW_JSON[1:])])
    for row in report.rows:
        values = row_json(model.DIMENSION_ROW_JSON, row, site.currency)
        writer.writerow([safe_cell(value) for value in values.values()])
    return out.getvalue()
