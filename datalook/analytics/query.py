"""One report request's parameters, read once: `parse(site, args, report)` → `ReportQuery`.

Every report route (JSON and CSV) goes through `parse`; it reads the parameter groups its
report takes, in the order their errors are checked, and raises one `ParameterError`
naming the first bad parameter. New parameters (filters, dimensions…) are a group here,
not a new parser per route.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from ..acquisition.dimensions import Filter, FilterError, parse_dimension, parse_filter
from ..models import Site
from . import journeys
from .funnels import breakdown as funnel_breakdown
from .funnels.definition import FunnelDefinition, parse_definition
from .parameters import ParameterError
from .ranges import DateRange, site_range
from .reports import attribution

_T = TypeVar("_T")

#: The longest property key the breakdown reads (longer ones are cut, never refused).
MAX_BREAKDOWN_KEY = 128
#: The longest success rule name (as events send them).
MAX_NAME = 100
#: At most this many `filter` parameters in one request.
MAX_FILTERS = 20
#: breakdown.json's rows per answer: the default and the most; and the largest offset.
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
MAX_OFFSET = 1_000_000


@dataclass(frozen=True)
class ReportQuery:
    """What one report request asks for: the site, its range, and the report's own options."""

    site: Site
    range: DateRange
    definition: FunnelDefinition | None = None
    journey: journeys.JourneyQuery | None = None
    path: str | None = None
    key: str = ""
    filters: tuple[Filter, ...] = ()
    dimension: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    # attribution.json's rule (None: every success), model, dimension and lookback.
    rule: str | None = None
    model: str = "last"
    lookback: timedelta = attribution.DEFAULT_LOOKBACK
    # A funnel's breakdown by the step-1 visit's channel or source (None: none).
    funnel_breakdown: str | None = None

    @property
    def site_id(self) -> int:
        """The site's id."""
        return self.site.id

    @property
    def zone(self) -> ZoneInfo:
        """The zone that cuts the range's days."""
        return self.range.tz

    @property
    def steps(self) -> FunnelDefinition:
        """The unsaved funnel asked for (a report that reads the "steps" group)."""
        return _given(self.definition, "steps")

    @property
    def journey_query(self) -> journeys.JourneyQuery:
        """The journeys' options (a report that reads the "journey" group)."""
        return _given(self.journey, "journey")

    @property
    def start_path(self) -> str:
        """The page path next steps start from (a report that reads the "path" group)."""
        return _given(self.path, "path")


def _given(value: _T | None, group: str) -> _T:
    """A parameter group's value, which its report's parse has read."""
    if value is None:
        raise LookupError(f"this report does not read the {group!r} parameters")
    return value


def _getlist(args: Mapping[str, str], name: str) -> list[str]:
    """Every value of a repeated parameter (a plain mapping holds at most one)."""
    getlist = getattr(args, "getlist", None)
    if getlist is not None:
        return list(getlist(name))
    value = args.get(name)
    return [] if value is None else [value]


def _range(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """`from`/`to` or `period`, in the site's zone."""
    return {"range": site_range(site, args, now_utc)}


def _steps(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """An unsaved funnel's definition: repeated `step`, `window`, `mode`."""
    definition = parse_definition(_getlist(args, "step"), args.get("window"), args.get("mode"))
    return {"definition": definition}


def _journey(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """The journeys' `steps`, `start`, `end` and `rule`."""
    return {"journey": journeys.parse_query(args)}


def _path(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """The page path that next steps start from (required)."""
    path = args.get("path") or ""
    if not path.startswith("/"):
        raise ParameterError("path", "invalid_path", "path must be a page path starting with /")
    return {"path": path}


def _key(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """The property key of the breakdown (optional; cut, never refused)."""
    return {"key": args.get("key", "").strip()[:MAX_BREAKDOWN_KEY]}


def _filters(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """Repeated `filter=<dimension><op><value>`: every one must pass (acquisition.dimensions)."""
    texts = _getlist(args, "filter")
    if len(texts) > MAX_FILTERS:
        raise ParameterError(
            "filter", "too_many_filters", f"at most {MAX_FILTERS} filters, got {len(texts)}"
        )
    found = []
    for text in texts:
        try:
            parsed = parse_filter(text)
        except FilterError as exc:
            raise ParameterError(exc.field, exc.code, exc.message) from None
        found.append(parsed)
    return {"filters": tuple(found)}


def _dimension(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """breakdown.json's `dimension` (required): a dimension name or `prop:<key>`."""
    text = (args.get("dimension") or "").strip()
    if not text:
        raise ParameterError("dimension", "missing", "dimension is required, e.g. source")
    try:
        dimension = parse_dimension(text)
    except FilterError as exc:
        raise ParameterError("dimension", exc.code, exc.message) from None
    return {"dimension": dimension}


def _count(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    """A whole-number parameter within [low, high], or its default when absent."""
    text = (args.get(name) or "").strip()
    if not text:
        return default
    if not text.isascii() or not text.isdigit():
        raise ParameterError(name, "invalid_number", f"{name} must be a whole number")
    value = int(text)
    if not low <= value <= high:
        raise ParameterError(name, "out_of_range", f"{name} must be {low} to {high}")
    return value


def _paging(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """breakdown.json's `limit` (1 to MAX_LIMIT) and `offset` (0 or more)."""
    return {
        "limit": _count(args, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT),
        "offset": _count(args, "offset", 0, 0, MAX_OFFSET),
    }


_LOOKBACK = re.compile(r"([1-9][0-9]{0,3})([hd])")


def _attribution(site: Site, args: Mapping[str, str], now_utc: datetime | None) -> dict[str, Any]:
    """attribution.json's `rule` (optional), `model`, `dimension` and `lookback`."""
    rule = (args.get("rule") or "").strip() or None
    if rule is not None and (len(rule) > MAX_NAME or not rule.isprintable()):
        raise ParameterError("rule", "invalid_rule", "rule must be a success rule name")
    model = (args.get("model") or "last").strip()
    if model not in attribution.MODELS:
        raise ParameterError(
            "model", "invalid_model", f"model must be one of {', '.join(attribution.MODELS)}"
        )
    dimension = (args.get("dimension") or "source").strip()
    if dimension not in attribution.DIMENSIONS:
        raise ParameterError(
            "dimension",
            "invalid_dimension",
            f"dimension must be one of {', '.join(attribution.DIMENSIONS)}",
        )
    text = (args.get("lookback") or "30d").strip()
    match = _LOOKBACK.fullmatch(text)
    if match is None:
        raise ParameterError(
            "lookback", "invalid_lookback", "lookback must be a number and h or d, e.g. 30d"
        )
    count, unit = int(match.group(1)), match.group(2)
    lookback = timedelta(days=count) if unit == "d" else timedelta(hours=count)
    if lookback > attribution.MAX_LOOKBACK:
        raise ParameterError(
            "lookback",
            "out_of_range",
            f"lookback may be at most {attribution.MAX_LOOKBACK.days}d",
        )
    return {"rule": rule, "model": model, "dimension": dimension, "lookback": lookback}


def _funnel_breakdown(
    site: Site, args: Mapping[str, str], now_utc: datetime | None
) -> dict[str, Any]:
    """A funnel's `breakdown`: channel or source of the visit of each visitor's step 1."""
    value = (args.get("breakdown") or "").strip() or None
    if value is not None and value not in funnel_breakdown.DIMENSIONS:
        raise ParameterError(
            "breakdown",
            "invalid_breakdown",
            f"breakdown must be one of {', '.join(funnel_breakdown.DIMENSIONS)}",
        )
    return {"funnel_breakdown": value}


Parser = Callable[[Site, Mapping[str, str], datetime | None], dict[str, Any]]

#: Each parameter group's parser.
GROUPS: dict[str, Parser] = {
    "range": _range,
    "steps": _steps,
    "journey": _journey,
    "path": _path,
    "key": _key,
    "filters": _filters,
    "dimension": _dimension,
    "paging": _paging,
    "attribution": _attribution,
    "funnel_breakdown": _funnel_breakdown,
}

#: The query parameters each group reads (the OpenAPI document lists them per report).
GROUP_PARAMETERS: dict[str, tuple[str, ...]] = {
    "range": ("from", "to", "period"),
    "steps": ("step", "window", "mode"),
    "journey": ("steps", "start", "end", "rule"),
    "path": ("path",),
    "key": ("key",),
    "filters": ("filter",),
    "dimension": ("dimension",),
    "paging": ("limit", "offset"),
    "attribution": ("rule", "model", "dimension", "lookback"),
    "funnel_breakdown": ("breakdown",),
}

#: The groups each report reads, in the order their errors are checked.
REPORTS: dict[str, tuple[str, ...]] = {
    "stats": ("range", "filters"),
    "page": ("range", "key"),
    "csv": ("range", "key", "filters"),
    "breakdown": ("range", "dimension", "filters", "paging"),
    "funnel": ("range", "steps", "filters", "funnel_breakdown"),
    "saved_funnel": ("range", "filters", "funnel_breakdown"),
    "journeys": ("range", "journey", "filters"),
    "next_steps": ("range", "journey", "path", "filters"),
    "attribution": ("range", "attribution", "filters"),
}


def parse(
    site: Site, args: Mapping[str, str], report: str, now_utc: datetime | None = None
) -> ReportQuery:
    """Read the parameters of `report` from `args` (ParameterError names the first bad one)."""
    values: dict[str, Any] = {}
    for group in REPORTS[report]:
        values.update(GROUPS[group](site, args, now_utc))
    return ReportQuery(site=site, **values)
