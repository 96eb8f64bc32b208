"""The reports as the stats.json contract and as CSV tables."""

from __future__ import annotations

import csv
import io

from ...models import Site
from ..money import decimal_string
from .model import BreakdownRow, Stats, Totals


def _totals_json(totals: Totals, currency: str) -> dict:
    """The totals object of stats.json."""
    return {
        "events": totals.events,
        "pageviews": totals.pageviews,
        "clicks": totals.clicks,
        "custom": totals.custom,
        "conversions": totals.conversions,
        "visitors": totals.visitors,
        "visitors_exact": totals.visitors_exact,
        "revenue": decimal_string(totals.revenue_micros, currency),
        "events_without_visitor": totals.events_without_visitor,
    }


def stats_json(site: Site, stats: Stats) -> dict:
    """The documented JSON body of GET /sites/<id>/stats.json."""
    currency = site.currency
    return {
        "site": site.domain,
        "timezone": stats.range.tz.key,  # the zone that cut the days (UTC for an unknown one)
        "currency": currency,
        "from": stats.range.first.isoformat(),
        "to": stats.range.last.isoformat(),
        "totals": _totals_json(stats.totals, currency),
        "previous": _totals_json(stats.previous, currency),
        "rules": [
            {
                "name": rule.name,
                "conversions": rule.conversions,
                "converters": rule.converters,
                "conversion_rate": round(rule.conversion_rate, 6),
                "revenue": decimal_string(rule.revenue_micros, currency),
            }
            for rule in stats.rules
        ],
        "series": [
            {
                "start": point.label,
                "events": point.events,
                "visitors": point.visitors,
                "conversions": point.conversions,
                "revenue": decimal_string(point.revenue_micros, currency),
            }
            for point in stats.series
        ],
        "pages": [
            {"page_path": page.page_path, "events": page.events, "visitors": page.visitors}
            for page in stats.pages
        ],
    }


# The CSV reports: name -> (header, rows of one Stats).
REPORTS = ("totals", "rules", "series", "pages", "breakdown")


# What makes a spreadsheet run a cell as a formula: these first characters (ASCII and their
# fullwidth forms, which some spreadsheets fold to ASCII), also after leading blanks.
_FORMULA_STARTS = frozenset("=+-@\uff1d\uff0b\uff0d\uff20")
_BLANKS = " \t\r\n\u00a0\u3000"


def _safe(value: object) -> object:
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
                    _safe(rule.name),
                    _safe(rule.label),
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
            writer.writerow([_safe(page.page_path), page.events, page.visitors])
    elif report == "breakdown":
        writer.writerow(["value", "events", "conversions", "revenue"])
        for row in breakdown or []:
            revenue = decimal_string(row.revenue_micros, cur)
            writer.writerow([_safe(row.value), row.events, row.conversions, revenue])
    else:
        raise ValueError(report)
    return out.getvalue()
