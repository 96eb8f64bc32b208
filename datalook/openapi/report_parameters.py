"""The query parameters of the reports as JSON and their errors, in the OpenAPI description.

Each report's parameters (names, descriptions, schemas) and the errors a bad one answers
(per parameter: code → meaning), keyed by the same endpoint names (`stats`, `funnel`,
`saved_funnel`, `journeys`, `next_steps`, `live`). The period names, the funnel's window
bounds and modes, the journeys' options and the live filters are read from the modules that
parse them; tests check the codes against every code the package can raise and against the
live answers.
"""

from __future__ import annotations

from ..acquisition import dimensions
from ..analytics import journeys, query, ranges, sessions
from ..analytics.funnels import breakdown as funnel_breakdown
from ..analytics.funnels import definition as funnels
from ..analytics.reports import attribution
from ..analytics.reports.raw_events import SUPPORTED
from ..analytics.reports.serialise import REPORTS
from ..ingest.schema import EVENT_NAMES, MAX_NAME, MAX_PATH, MAX_USER_ID
from .common import ref

#: The `after` cursor of live.json, as live.Cursor spells it.
CURSOR_PATTERN = "^e[0-9]{1,19}\\.r[0-9]{1,19}$"
#: A key id as live.json's `key` filter accepts it.
KEY_ID_PATTERN = "^[A-Za-z0-9]{1,32}$"

#: The date range's errors (ranges.parse_range), by parameter.
RANGE_ERRORS: dict[str, dict[str, str]] = {
    "from": {
        "missing": "`to` is given without `from`.",
        "invalid_date": "Not a date written YYYY-MM-DD.",
        "out_of_range": f"Before {ranges.EARLIEST_DAY.isoformat()} or after the year 9998.",
    },
    "to": {
        "missing": "`from` is given without `to`.",
        "invalid_date": "Not a date written YYYY-MM-DD.",
        "out_of_range": f"Before {ranges.EARLIEST_DAY.isoformat()} or after the year 9998.",
        "before_from": "`to` is before `from`.",
        "range_too_long": f"The range is {ranges.MAX_CUSTOM_DAYS} days or longer.",
    },
    "period": {
        "unknown_period": f"Not one of {', '.join(ranges.PERIODS)}.",
        "conflicting_parameters": "`period` is given beside `from`/`to`.",
    },
}

_DIMENSIONS = ", ".join(SUPPORTED)
#: The `filter` parameter's errors (query._filters, acquisition.dimensions.parse_filter).
FILTER_ERRORS: dict[str, dict[str, str]] = {
    "filter": {
        "empty_filter": "Empty: a filter is `<dimension><op><value>`, e.g. `country==DE`.",
        "unknown_operator": "No operator: use `==`, `!=` or `=~`.",
        "unknown_dimension": f"Not one of {_DIMENSIONS} or `prop:<key>`.",
        "invalid_property_key": (
            f"`prop:` without a key of 1 to {dimensions.MAX_PROPERTY_KEY} characters."
        ),
        "empty_value": "No value after the operator (`(none)` matches events without one).",
        "value_too_long": f"The value is longer than {dimensions.MAX_FILTER_VALUE} characters.",
        "too_many_filters": f"More than {query.MAX_FILTERS} filters.",
    },
}

#: breakdown.json's own errors (query._dimension, query._paging), by parameter.
BREAKDOWN_ERRORS: dict[str, dict[str, str]] = {
    "dimension": {
        "missing": "No dimension.",
        "unknown_dimension": f"Not one of {_DIMENSIONS} or `prop:<key>`.",
        "invalid_property_key": (
            f"`prop:` without a key of 1 to {dimensions.MAX_PROPERTY_KEY} characters."
        ),
    },
    "limit": {
        "invalid_number": "Not a whole number.",
        "out_of_range": f"Not 1 to {query.MAX_LIMIT}.",
    },
    "offset": {
        "invalid_number": "Not a whole number.",
        "out_of_range": f"Not 0 to {query.MAX_OFFSET}.",
    },
}

#: attribution.json's own errors (query._attribution), by parameter.
ATTRIBUTION_ERRORS: dict[str, dict[str, str]] = {
    "rule": {"invalid_rule": f"Longer than {MAX_NAME} characters, or holds control characters."},
    "model": {"invalid_model": f"Not one of {', '.join(attribution.MODELS)}."},
    "dimension": {"invalid_dimension": f"Not one of {', '.join(attribution.DIMENSIONS)}."},
    "lookback": {
        "invalid_lookback": "Not a number from 1 and a unit h or d (`36h`, `30d`).",
        "out_of_range": f"Longer than {attribution.MAX_LOOKBACK.days} days.",
    },
}

#: A funnel's breakdown error (query._funnel_breakdown).
FUNNEL_BREAKDOWN_ERRORS: dict[str, dict[str, str]] = {
    "breakdown": {
        "invalid_breakdown": f"Not one of {', '.join(funnel_breakdown.DIMENSIONS)}.",
    },
}

#: funnel.json's own errors (funnels.parse_definition), by parameter.
FUNNEL_ERRORS: dict[str, dict[str, str]] = {
    "step": {
        "step_count": f"Fewer than {funnels.MIN_STEPS} or more than {funnels.MAX_STEPS} steps.",
        "blank_step": "A step is empty: empty text, `{}` or only empty values.",
        "malformed_step": "A step is not a JSON object.",
        "unknown_key": "A step has a key other than event_name, page_path, name, property.",
        "unknown_event_name": f"`event_name` is not one of {', '.join(EVENT_NAMES)}.",
        "invalid_page_path": (
            f"`page_path` is not 1 to {MAX_PATH} characters starting with `/`, has control "
            "characters, or has `*` anywhere but at its end."
        ),
        "invalid_name": f"`name` is not 1 to {MAX_NAME} characters without control characters.",
        "invalid_property": "`property` is not `{key, value}` with a string, number or boolean.",
        "invalid_key": (
            f"`property.key` is not 1 to {funnels.MAX_PROPERTY_KEY} characters without "
            "control characters."
        ),
    },
    "window": {
        "invalid_window": "Not a number and a unit m, h or d (`90m`, `24h`, `7d`).",
        "out_of_range": "Shorter than 1 minute or longer than 30 days.",
    },
    "mode": {"unknown_mode": f"Not one of {', '.join(funnels.MODES)}."},
}

#: journeys.json's own errors (journeys.parse_query), by parameter.
JOURNEY_ERRORS: dict[str, dict[str, str]] = {
    "steps": {"out_of_range": f"Not a whole number from 1 to {sessions.KEPT_STEPS}."},
    "start": {"invalid_path": f"Not a page path starting with `/` (at most {MAX_PATH})."},
    "end": {"invalid_path": f"Not a page path starting with `/` (at most {MAX_PATH})."},
    "rule": {"invalid_rule": f"Longer than {MAX_NAME} characters, or holds `|`."},
}

#: journeys/next.json's own error beside those of journeys.json.
NEXT_ERRORS: dict[str, dict[str, str]] = {
    "path": {"invalid_path": "Missing, or not a page path starting with `/`."},
}

#: live.json's errors (live.parse_cursor, live.parse_filters), by parameter.
LIVE_ERRORS: dict[str, dict[str, str]] = {
    "after": {"invalid_cursor": "Not a cursor returned by live.json."},
    "type": {"invalid_choice": f"Not one of {', '.join(EVENT_NAMES)}."},
    "rule": {"too_long": f"Longer than {MAX_NAME} characters."},
    "key": {
        "invalid_key": "Not a key id (1 to 32 letters and digits).",
        "unknown_key": "The site has no key with this id.",
    },
    "visitor": {"too_long": f"Longer than {MAX_USER_ID} characters."},
    "refused": {"invalid_boolean": "Not one of 1, true, yes, on, 0, false, no, off."},
}


def _merge(*tables: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """One parameter → code → meaning table from several."""
    out: dict[str, dict[str, str]] = {}
    for table in tables:
        for field, codes in table.items():
            out.setdefault(field, {}).update(codes)
    return out


#: Every report endpoint: its envelope code for a bad parameter and its parameter errors.
ENDPOINT_ERRORS: dict[str, tuple[str, dict[str, dict[str, str]]]] = {
    "stats": ("invalid_request", _merge(RANGE_ERRORS, FILTER_ERRORS)),
    "breakdown": (
        "invalid_request",
        _merge(RANGE_ERRORS, BREAKDOWN_ERRORS, FILTER_ERRORS),
    ),
    "funnel": (
        "invalid_request",
        _merge(RANGE_ERRORS, FUNNEL_ERRORS, FUNNEL_BREAKDOWN_ERRORS),
    ),
    "saved_funnel": ("invalid_request", _merge(RANGE_ERRORS, FUNNEL_BREAKDOWN_ERRORS)),
    "journeys": ("invalid_request", _merge(RANGE_ERRORS, JOURNEY_ERRORS)),
    "next_steps": (
        "invalid_request",
        _merge(RANGE_ERRORS, JOURNEY_ERRORS, NEXT_ERRORS),
    ),
    "live": ("invalid_request", LIVE_ERRORS),
    "attribution": (
        "invalid_request",
        _merge(RANGE_ERRORS, ATTRIBUTION_ERRORS, FILTER_ERRORS),
    ),
}


def _query(name: str, description: str, schema: dict, required: bool = False) -> dict:
    """One query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def parameters() -> dict:
    """components/parameters shared by the reports."""
    day = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    path = {"type": "string", "pattern": "^/", "maxLength": MAX_PATH}
    return {
        "SiteId": {
            "name": "site_id",
            "in": "path",
            "required": True,
            "description": "The site's id (the number in the dashboard's URL).",
            "schema": {"type": "integer", "minimum": 1},
        },
        "From": _query(
            "from",
            "First day of the range, inclusive, in the site's time zone. Needs `to`.",
            day,
        ),
        "To": _query(
            "to",
            "Last day of the range, inclusive, in the site's time zone. Needs `from`; "
            f"the range is shorter than {ranges.MAX_CUSTOM_DAYS} days.",
            day,
        ),
        "Period": _query(
            "period",
            "A named range instead of `from`/`to` (not beside them); without either, "
            f"`{ranges.DEFAULT_PERIOD}`. "
            + "; ".join(f"`{key}`: {label}" for key, label in ranges.PERIODS.items())
            + ". Days are cut at local midnight in the site's time zone (UTC should this "
            "server not know the stored zone). `all` starts on the local day of the site's "
            "first counted event (today without any), the same in every report.",
            {
                "type": "string",
                "enum": list(ranges.PERIODS),
                "default": ranges.DEFAULT_PERIOD,
            },
        ),
        "JourneySteps": _query(
            "steps",
            f"Steps per journey, 1 to {sessions.KEPT_STEPS}.",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": sessions.KEPT_STEPS,
                "default": journeys.DEFAULT_STEPS,
            },
        ),
        "JourneyStart": _query(
            "start", "Only sessions whose first page is this path (exact).", path
        ),
        "JourneyEnd": _query(
            "end",
            "Only sessions whose last page is this path (exact); the journeys are then "
            "their last `steps` pages.",
            path,
        ),
        "JourneyRule": _query(
            "rule",
            "Only sessions with a success event of this rule (`name`); `converted` then "
            "counts every session shown.",
            {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": "^[^|]*$"},
        ),
    }


_SITE = [ref("parameters", "SiteId")]
_RANGE = [ref("parameters", name) for name in ("From", "To", "Period")]


def filter_parameter() -> dict:
    """The repeated `filter` of every report: stats.json, breakdown.json, the CSV reports,
    the funnels and the journeys."""
    return _query(
        "filter",
        "Repeat for each filter; an event counts when it passes all of them. "
        "`<dimension><op><value>`, split at the first operator: `==` equals (exact; "
        f"`{dimensions.NONE}` for events without a value, `{dimensions.NOT_RECORDED}` for "
        "events stored before the server recorded it), `!=` does not equal, `=~` contains "
        f"(case-insensitive). Dimensions: {_DIMENSIONS}, or `prop:<key>` (an event "
        "property). channel, source, medium, campaign, term, content, referrer, entry_page "
        "and exit_page are the visit's (its first event's, its first and last page view's). "
        f"At most {query.MAX_FILTERS}. With a filter, stats.json is counted from the "
        "matching events themselves (visitors always exact). On funnels and journeys a "
        "filter applies to the visit in which step 1 (or the session) starts: the visit "
        "passes when one of its events in the range passes every filter; a funnel's later "
        "steps may lie in any visit.",
        {
            "type": "array",
            "maxItems": query.MAX_FILTERS,
            "items": {"type": "string", "minLength": 4, "pattern": "(==|!=|=~)"},
            "examples": [["source==Google", "country!=DE", "page=~pricing"]],
        },
    ) | {"style": "form", "explode": True}


def _dimension_parameters() -> list:
    """breakdown.json's dimension."""
    return [
        _query(
            "dimension",
            f"The dimension to break down: {_DIMENSIONS}, or `prop:<key>`.",
            {"type": "string", "examples": ["source", "channel", "prop:plan"]},
            required=True,
        ),
    ]


def _paging_parameters() -> list:
    """breakdown.json's paging."""
    return [
        _query(
            "limit",
            f"Rows in this answer, 1 to {query.MAX_LIMIT}.",
            {
                "type": "integer",
                "minimum": 1,
                "maximum": query.MAX_LIMIT,
                "default": query.DEFAULT_LIMIT,
            },
        ),
        _query(
            "offset",
            "Rows to skip (for the next page: the previous offset plus limit).",
            {"type": "integer", "minimum": 0, "maximum": query.MAX_OFFSET, "default": 0},
        ),
    ]


_JOURNEY = [
    ref("parameters", name)
    for name in ("JourneySteps", "JourneyStart", "JourneyEnd", "JourneyRule")
]


def _funnel_parameters() -> list:
    """The definition of an unsaved funnel: steps, window, mode."""
    low, high = funnels.MIN_WINDOW, funnels.MAX_WINDOW
    return [
        _query(
            "step",
            f"Repeat once per step, {funnels.MIN_STEPS} to {funnels.MAX_STEPS} times, in "
            "order; each is a URL-encoded JSON object (FunnelStep).",
            {
                "type": "array",
                "minItems": funnels.MIN_STEPS,
                "maxItems": funnels.MAX_STEPS,
                "items": {
                    "type": "string",
                    "contentMediaType": "application/json",
                    "contentSchema": ref("schemas", "FunnelStep"),
                },
            },
            required=True,
        )
        | {"style": "form", "explode": True},
        _query(
            "window",
            f"The conversion window from step 1: a number and a unit m, h or d, from "
            f"{int(low.total_seconds() // 60)} minute to {high.days} days.",
            {
                "type": "string",
                "pattern": funnels.WINDOW_PATTERN,
                "default": funnels.DEFAULT_WINDOW,
                "examples": ["90m", "24h", "7d"],
            },
        ),
        _query(
            "mode",
            "`ordered`: other events may fall between steps; `strict`: each next step is "
            "the visitor's very next event.",
            {"type": "string", "enum": list(funnels.MODES), "default": funnels.MODES[0]},
        ),
    ]


def _funnel_breakdown_parameters() -> list:
    """A funnel's breakdown by the step-1 visit's acquisition."""
    return [
        _query(
            "breakdown",
            "Also count the funnel per value of the channel or source of the visit where "
            "each visitor's step 1 happened (its first event's value): `breakdown.rows`, "
            "one per value, whose steps add up to the funnel's.",
            {"type": "string", "enum": list(funnel_breakdown.DIMENSIONS)},
        )
    ]


def _funnel_id() -> dict:
    """The saved funnel, in the path."""
    return {
        "name": "funnel_id",
        "in": "path",
        "required": True,
        "description": "A saved funnel of this site.",
        "schema": {"type": "integer", "minimum": 1},
    }


def _next_steps_parameters() -> list:
    """journeys/next.json's own parameter."""
    return [
        _query(
            "path",
            "The page to start from.",
            {"type": "string", "pattern": "^/"},
            required=True,
        ),
    ]


def _live_parameters() -> list:
    """live.json's filters and cursor."""
    return [
        ref("parameters", "SiteId"),
        _query(
            "after",
            "A cursor from an earlier answer; without it, the newest items and the keys.",
            {"type": "string", "pattern": CURSOR_PATTERN},
        ),
        _query(
            "type",
            "Only events of this kind (no refusals).",
            {"type": "string", "enum": list(EVENT_NAMES)},
        ),
        _query(
            "rule",
            "Only success events of this rule (no refusals).",
            {"type": "string", "maxLength": MAX_NAME},
        ),
        _query(
            "key",
            "Only what this key sent (its key id).",
            {"type": "string", "pattern": KEY_ID_PATTERN},
        ),
        _query(
            "visitor",
            "Only events of this `success_user_id` (no refusals).",
            {"type": "string", "maxLength": MAX_USER_ID},
        ),
        _query(
            "refused",
            "`1`: refused requests only.",
            {
                "type": "string",
                "enum": ["1", "true", "yes", "on", "0", "false", "no", "off"],
            },
        ),
    ]


def _attribution_parameters() -> list:
    """attribution.json's rule, model, dimension and lookback."""
    return [
        _query(
            "rule",
            "The success rule (`name`) whose conversions are credited; without it, every "
            "success event.",
            {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
        ),
        _query(
            "model",
            "`first`: the earliest visit of the lookback gets the whole conversion; `last`: "
            "the latest visit with a source (the latest visit when all are direct); "
            "`linear`: every visit an equal share (revenue split in exact cents).",
            {"type": "string", "enum": list(attribution.MODELS), "default": "last"},
        ),
        _query(
            "dimension",
            "What a visit is credited by: the acquisition of its first page view.",
            {"type": "string", "enum": list(attribution.DIMENSIONS), "default": "source"},
        ),
        _query(
            "lookback",
            "How long before a conversion its visits count: a number and h or d, at most "
            f"{attribution.MAX_LOOKBACK.days}d.",
            {"type": "string", "pattern": "^[1-9][0-9]{0,3}[hd]$", "default": "30d"},
        ),
    ]


def _group_parameters(group: str) -> list:
    """The documented query parameters of one of analytics.query's parameter groups."""
    return {
        "range": _RANGE,
        "steps": _funnel_parameters(),
        "journey": _JOURNEY,
        "path": _next_steps_parameters(),
        "filters": [filter_parameter()],
        "dimension": _dimension_parameters(),
        "paging": _paging_parameters(),
        "attribution": _attribution_parameters(),
        "funnel_breakdown": _funnel_breakdown_parameters(),
    }[group]


def endpoint_parameters(endpoint: str) -> list:
    """The parameters of one report endpoint (a key of ENDPOINT_ERRORS), in order: its path
    parameters, then the groups that analytics.query.parse reads for it, in its order."""
    if endpoint == "live":
        return _live_parameters()
    path = [*_SITE, _funnel_id()] if endpoint == "saved_funnel" else _SITE
    return [*path, *(p for group in query.REPORTS[endpoint] for p in _group_parameters(group))]


def csv_parameters() -> list:
    """The parameters of the CSV exports: the site, which report, the range, the breakdown's
    property key and the filters (analytics.query's "csv" groups)."""
    report = {
        "name": "report",
        "in": "path",
        "required": True,
        "description": "Which report: " + ", ".join(f"`{name}`" for name in REPORTS) + ".",
        "schema": {"type": "string", "enum": list(REPORTS)},
    }
    key = _query(
        "key",
        "The property key whose values the `breakdown` report lists (ignored by the others).",
        {"type": "string", "maxLength": query.MAX_BREAKDOWN_KEY},
    )
    return [*_SITE, report, *_RANGE, key, filter_parameter()]
