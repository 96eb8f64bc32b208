"""The OpenAPI description of a site's reports as JSON, for its logged-in owner: stats.json,
funnel.json, funnels/{funnel_id}.json, journeys.json, journeys/next.json and live.json.

The period names, the funnel's window bounds, modes and step fields, the journeys' options
and the page sizes are read from the modules that use them (analytics/, live.py), so the
description follows the code. The parameter errors are listed here, per endpoint, with
their meaning; tests check them against every code the package can raise and against the
live answers.
"""

from __future__ import annotations

from .. import live
from ..analytics import journeys, ranges, sessions
from ..analytics.funnels import definition as funnels
from ..analytics.reports import pages as report_pages
from ..config import DEFAULT_EXACT_EVENTS
from ..ingest.schema import EVENT_NAMES, MAX_NAME, MAX_PATH, MAX_USER_ID
from ..models import KEY_KIND_LIVE, KEY_KIND_TEST
from .common import MESSAGE, ref

#: Money: an exact decimal string, never a float (negative values are allowed in events).
MONEY_PATTERN = "^-?[0-9]+(\\.[0-9]+)?$"
#: The `after` cursor of live.json, as live.Cursor spells it.
CURSOR_PATTERN = "^e[0-9]{1,19}\\.r[0-9]{1,19}$"
#: A key id as live.json's `key` filter accepts it.
KEY_ID_PATTERN = "^[A-Za-z0-9]{1,32}$"

# Control characters, refused in a step's texts; a text must also hold a visible character.
_CONTROL = "\\x00-\\x1f\\x7f"
_VISIBLE = f"^(?=.*\\S)[^{_CONTROL}]*$"

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

#: funnel.json's own errors (funnels.parse_definition), by parameter.
FUNNEL_ERRORS: dict[str, dict[str, str]] = {
    "step": {
        "step_count": f"Fewer than {funnels.MIN_STEPS} or more than {funnels.MAX_STEPS} steps.",
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
    "stats": ("invalid_request", RANGE_ERRORS),
    "funnel": ("invalid_request", _merge(RANGE_ERRORS, FUNNEL_ERRORS)),
    "saved_funnel": ("invalid_request", RANGE_ERRORS),
    "journeys": ("invalid_request", _merge(RANGE_ERRORS, JOURNEY_ERRORS)),
    "next_steps": (
        "invalid_request",
        _merge(RANGE_ERRORS, JOURNEY_ERRORS, NEXT_ERRORS),
    ),
    "live": ("invalid_request", LIVE_ERRORS),
}


# --- parameters --------------------------------------------------------------------------


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


_RANGE = [ref("parameters", name) for name in ("SiteId", "From", "To", "Period")]
_JOURNEY = [
    ref("parameters", name)
    for name in ("JourneySteps", "JourneyStart", "JourneyEnd", "JourneyRule")
]


# --- schemas -----------------------------------------------------------------------------


def _object(properties: dict, description: str | None = None) -> dict:
    """A closed object whose properties are all present."""
    out = {
        "type": "object",
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }
    if description:
        out["description"] = description
    return out


_COUNT = {"type": "integer", "minimum": 0}
_RATIO = {"type": "number", "minimum": 0}


def _stats_schemas() -> dict:
    """The schemas of stats.json."""
    money = ref("schemas", "Money")
    totals = _object(
        {
            "events": _COUNT,
            "pageviews": _COUNT,
            "clicks": _COUNT,
            "custom": _COUNT,
            "conversions": {**_COUNT, "description": "Success events."},
            "visitors": {
                **_COUNT,
                "description": "Distinct visitors (`success_user_id`, or the browser's "
                "cookieless daily id); events without one are not visitors.",
            },
            "visitors_exact": {
                "type": "boolean",
                "description": "False when `visitors` is a HyperLogLog estimate (error within "
                f"about 1%): the range holds more than {DEFAULT_EXACT_EVENTS:,} "
                "events (the server's default limit).",
            },
            "revenue": money,
            "events_without_visitor": _COUNT,
        }
    )
    return {
        "Money": {
            "type": "string",
            "pattern": MONEY_PATTERN,
            "description": "An exact decimal amount in the site's currency, as a string "
            "(never a float): every stored digit, and at least the currency's minor digits.",
            "examples": ["25.29", "0.00", "1.000001"],
        },
        "StatsTotals": totals,
        "Stats": _object(
            {
                "site": {"type": "string", "description": "The site's domain."},
                "timezone": {
                    "type": "string",
                    "description": "The IANA name that cut the days: the site's setting, or "
                    "UTC should this server not know it.",
                },
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "totals": ref("schemas", "StatsTotals"),
                "previous": {
                    "allOf": [ref("schemas", "StatsTotals")],
                    "description": "The same figures for the same number of days just before.",
                },
                "rules": {
                    "type": "array",
                    "description": "Every success rule of the site (archived ones included), "
                    "and any other with conversions in the range.",
                    "items": _object(
                        {
                            "name": {"type": "string"},
                            "conversions": _COUNT,
                            "converters": {**_COUNT, "description": "Distinct visitors."},
                            "conversion_rate": {
                                **_RATIO,
                                "description": "converters / visitors of the range (6 "
                                "decimals; 0 without visitors).",
                            },
                            "revenue": money,
                        }
                    ),
                },
                "series": {
                    "type": "array",
                    "description": "The chart's buckets: per hour up to 2 days (`start` "
                    "like `2026-11-01T14:00+0100`), per day up to 90, per week (from "
                    "Monday; the first may be partial) up to 366, per month beyond.",
                    "items": _object(
                        {
                            "start": {"type": "string"},
                            "events": _COUNT,
                            "visitors": _COUNT,
                            "conversions": _COUNT,
                            "revenue": money,
                        }
                    ),
                },
                "pages": {
                    "type": "array",
                    "maxItems": report_pages.TOP_PAGES,
                    "description": f"The top {report_pages.TOP_PAGES} pages by events.",
                    "items": _object(
                        {"page_path": {"type": "string"}, "events": _COUNT, "visitors": _COUNT}
                    ),
                },
            }
        ),
    }


def _step_schema() -> dict:
    """One funnel step as funnel.json takes it (the fields of funnels.Step.as_json)."""
    fields = list(funnels.Step(EVENT_NAMES[0]).as_json())
    properties = {
        "event_name": {"type": "string", "enum": list(EVENT_NAMES)},
        "page_path": {
            "type": ["string", "null"],
            "pattern": f"^/[^*{_CONTROL}]*\\*?$",
            "maxLength": MAX_PATH,
            "description": "Exact, or a prefix written with a final `*` (`/docs/*`).",
        },
        "name": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": MAX_NAME,
            "pattern": _VISIBLE,
            "description": "The success rule's `name`.",
        },
        "property": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["key", "value"],
                    "additionalProperties": False,
                    "properties": {
                        "key": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": funnels.MAX_PROPERTY_KEY,
                            "pattern": _VISIBLE,
                        },
                        "value": {"type": ["string", "number", "boolean"]},
                    },
                },
            ],
            "description": "One property equality (JSON equality: `true` is not `1`).",
        },
    }
    return {
        "type": "object",
        "required": ["event_name"],
        "additionalProperties": False,
        "description": "What one step matches; `null` or absent fields do not filter.",
        "properties": {name: properties[name] for name in fields},
        "examples": [
            {"event_name": "pageview", "page_path": "/pricing", "name": None, "property": None}
        ],
    }


def _funnel_schemas() -> dict:
    """The schemas of funnel.json and funnels/{funnel_id}.json."""
    ratio = {"type": "number", "minimum": 0, "maximum": 1}
    return {
        "FunnelStep": _step_schema(),
        "FunnelReport": _object(
            {
                "steps": {
                    "type": "array",
                    "minItems": funnels.MIN_STEPS,
                    "maxItems": funnels.MAX_STEPS,
                    "items": _object(
                        {
                            "label": {"type": "string", "examples": ["pageview /pricing"]},
                            "visitors": {**_COUNT, "description": "Visitors who reached it."},
                            "conversion_from_start": {**ratio, "description": "1.0 at step 1."},
                            "conversion_from_previous": {
                                **ratio,
                                "description": "1.0 at step 1.",
                            },
                            "median_seconds_from_previous": {
                                "type": ["number", "null"],
                                "minimum": 0,
                                "description": "null at step 1 and when nobody reached it.",
                            },
                            "revenue": {
                                "allOf": [ref("schemas", "Money")],
                                "description": "Sum of `success_value` of the success events "
                                "matched at this step, written as stats.json writes money "
                                '(the site\'s currency: `"1250"` in JPY).',
                            },
                        }
                    ),
                },
                "excluded_events_without_visitor": {
                    **_COUNT,
                    "description": "Events in the range that match a step but carry no "
                    "visitor id: they take no part.",
                },
            }
        ),
    }


def _journey_schemas() -> dict:
    """The schemas of journeys.json and journeys/next.json."""
    return {
        "Journeys": _object(
            {
                "journeys": {
                    "type": "array",
                    "maxItems": journeys.TOP,
                    "items": _object(
                        {
                            "paths": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": sessions.KEPT_STEPS,
                                "items": {"type": "string"},
                            },
                            "sessions": _COUNT,
                            "visitors": _COUNT,
                            "converted": {
                                **_COUNT,
                                "description": "Sessions with a success (of `rule`, if given).",
                            },
                        }
                    ),
                },
                "sessions_total": {
                    **_COUNT,
                    "description": "Sessions that the journeys are drawn from.",
                },
            }
        ),
        "NextSteps": _object(
            {
                "path": {"type": "string"},
                "next": {
                    "type": "array",
                    "maxItems": journeys.TOP,
                    "items": _object(
                        {
                            "path": {
                                "type": ["string", "null"],
                                "description": "null when the visitor left.",
                            },
                            "left": {"type": "boolean"},
                            "sessions": _COUNT,
                            "visitors": _COUNT,
                        }
                    ),
                },
                "sessions_total": _COUNT,
            }
        ),
    }


def _live_schemas() -> dict:
    """The schemas of live.json."""
    time = {"type": "string", "format": "date-time", "pattern": "Z$"}
    key = {
        "oneOf": [{"type": "null"}, ref("schemas", "LiveKey")],
        "description": "The key that sent it; null for the browser endpoint.",
    }
    return {
        "LiveKey": _object(
            {
                "key_id": {"type": "string"},
                "name": {"type": "string"},
                "kind": {"type": "string", "enum": [KEY_KIND_LIVE, KEY_KIND_TEST]},
            }
        ),
        "LiveEvent": _object(
            {
                "kind": {"const": "event"},
                "id": {"type": "string", "pattern": "^e[0-9]+$"},
                "time": {**time, "description": "When it was received."},
                "occurred_at": time,
                "event_name": {"type": "string", "enum": list(EVENT_NAMES)},
                "name": {"type": ["string", "null"]},
                "page_path": {"type": "string"},
                "visitor_id": {"type": "string"},
                "success_user_id": {"type": ["string", "null"]},
                "success_value": {"type": ["number", "null"]},
                "properties": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
                "stripped_keys": {"type": "array", "items": {"type": "string"}},
                "event_id": {"type": ["string", "null"]},
                "key": key,
                "test": {"type": "boolean"},
                "duplicate": {"const": False},
            },
            "A stored event, with all its fields.",
        ),
        "LiveRefusal": _object(
            {
                "kind": {"type": "string", "enum": ["refused", "duplicate"]},
                "id": {"type": "string", "pattern": "^r[0-9]+$"},
                "time": time,
                "status": {"type": "integer", "description": "204 for a duplicate."},
                "code": {
                    "type": "string",
                    "description": "The envelope's code (`duplicate` for a duplicate).",
                },
                "message": {"type": "string"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "code", "message"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "field": {"type": "string"},
                            "code": {"type": "string"},
                            "message": {"type": "string"},
                        },
                    },
                },
                "excerpt": {
                    "type": ["string", "null"],
                    "description": "The start of the body, with personal-data keys and "
                    "anything token-like removed.",
                },
                "suppressed": {
                    **_COUNT,
                    "description": "Refusals of the same key not recorded one by one just "
                    "before this one.",
                },
                "key": key,
                "test": {"type": "boolean"},
                "duplicate": {"type": "boolean"},
            },
            "A request refused for an identified key, or a duplicate (accepted, not stored "
            "again). Never the secret.",
        ),
        "LiveFeed": {
            "type": "object",
            "required": ["items", "cursor", "gap"],
            "additionalProperties": False,
            "properties": {
                "items": {
                    "type": "array",
                    "maxItems": live.PAGE,
                    "description": "Newest first.",
                    "items": {
                        "oneOf": [ref("schemas", "LiveEvent"), ref("schemas", "LiveRefusal")]
                    },
                },
                "cursor": {
                    "type": "string",
                    "pattern": CURSOR_PATTERN,
                    "description": "Send it back as `after` for what comes next.",
                },
                "gap": {
                    "type": "boolean",
                    "description": f"After a cursor: more than {live.PAGE} arrived, and the "
                    "oldest of them are not shown.",
                },
                "keys": {
                    "type": "array",
                    "items": ref("schemas", "LiveKey"),
                    "description": "Without `after` only: the site's keys, for the filter.",
                },
            },
        },
    }


def _parameter_error() -> dict:
    """One problem with one query parameter."""
    return {
        "type": "object",
        "required": ["field", "code", "message"],
        "additionalProperties": False,
        "properties": {
            "field": {"type": "string", "description": "The query parameter."},
            "code": {"type": "string"},
            "message": MESSAGE,
        },
    }


def schemas() -> dict:
    """components/schemas of the reports."""
    return {
        **_stats_schemas(),
        **_funnel_schemas(),
        **_journey_schemas(),
        **_live_schemas(),
        "ParameterError": _parameter_error(),
    }


# --- responses ---------------------------------------------------------------------------


def bad_request_schema(endpoint: str) -> dict:
    """The 400 body of one report endpoint: its envelope code and its parameters' codes."""
    code, table = ENDPOINT_ERRORS[endpoint]
    problems = [
        {
            "properties": {
                "field": {"const": field},
                "code": {"enum": list(codes)},
            }
        }
        for field, codes in table.items()
    ]
    return {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "errors"],
                "additionalProperties": False,
                "properties": {
                    "code": {"const": code},
                    "message": MESSAGE,
                    "errors": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1,
                        "description": "The first bad parameter (checked in order).",
                        "items": {"allOf": [ref("schemas", "ParameterError")], "anyOf": problems},
                    },
                },
            }
        },
    }


def _bad_request(endpoint: str) -> dict:
    """The documented 400 of one endpoint, its codes explained."""
    _code, table = ENDPOINT_ERRORS[endpoint]
    lines = [
        f"- `{field}`: " + " ".join(f"`{code}`: {meaning}" for code, meaning in codes.items())
        for field, codes in table.items()
    ]
    return {
        "description": "A bad parameter; `errors[0].field` names it.\n\n" + "\n".join(lines),
        "content": {"application/json": {"schema": bad_request_schema(endpoint)}},
    }


def responses() -> dict:
    """components/responses shared by the reports."""
    return {
        "LogInFirst": {
            "description": "`unauthorized`: not logged in (no valid session cookie). A JSON "
            "answer, never a redirect to the HTML log-in page; the dashboard's pages "
            "themselves still redirect to `/login?next=…`.",
            "content": {"application/json": {"schema": ref("schemas", "Error")}},
        },
        "SiteNotFound": {
            "description": "`not_found`: no such site, or the site belongs to another user "
            "(never 403: others do not learn that it exists).",
            "content": {"application/json": {"schema": ref("schemas", "Error")}},
        },
    }


def _operation(
    operation_id: str,
    summary: str,
    description: str,
    parameters: list,
    schema: str,
    endpoint: str,
    not_found: str | None = None,
) -> dict:
    """A GET of the reports: 200 with `schema`, 400 for `endpoint`, 401, 404."""
    missing = ref("responses", "SiteNotFound")
    if not_found:
        missing = {
            "description": not_found,
            "content": {"application/json": {"schema": ref("schemas", "Error")}},
        }
    return {
        "operationId": operation_id,
        "tags": ["Reports"],
        "summary": summary,
        "description": description,
        "security": [{"sessionCookie": []}],
        "parameters": parameters,
        "responses": {
            "200": {
                "description": "The report.",
                "content": {"application/json": {"schema": ref("schemas", schema)}},
            },
            "400": _bad_request(endpoint),
            "401": ref("responses", "LogInFirst"),
            "404": missing,
        },
    }


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


_FUNNEL_RULES = (
    "Counted per visitor; events without a visitor id take no part "
    "(`excluded_events_without_visitor`). A visitor enters with a step-1 event inside the "
    "range; each next step is a different event at or after the previous one, no later than "
    "step 1 plus the window (later steps may fall after the range's end). A visitor counts "
    "once, at the furthest step reached from any of their step-1 events in the range."
)


def paths() -> dict:
    """The report paths."""
    base = "/sites/{site_id}"
    funnel_id = {
        "name": "funnel_id",
        "in": "path",
        "required": True,
        "description": "A saved funnel of this site.",
        "schema": {"type": "integer", "minimum": 1},
    }
    return {
        f"{base}/stats.json": {
            "get": _operation(
                "getStats",
                "The dashboard's figures over a date range",
                "Totals with the previous period, success rules, the chart's series and "
                "the top pages, in the site's time zone and currency. Events appear within "
                "seconds of being stored; events of test keys are never counted.",
                _RANGE,
                "Stats",
                "stats",
            )
        },
        f"{base}/funnel.json": {
            "get": _operation(
                "getFunnel",
                "An unsaved funnel over a date range",
                _FUNNEL_RULES,
                [*_RANGE, *_funnel_parameters()],
                "FunnelReport",
                "funnel",
            )
        },
        f"{base}/funnels/{{funnel_id}}.json": {
            "get": _operation(
                "getSavedFunnel",
                "A saved funnel over a date range",
                _FUNNEL_RULES + " The steps, window and mode are the saved funnel's.",
                [*_RANGE, funnel_id],
                "FunnelReport",
                "saved_funnel",
                "`not_found`: no such site of yours, or no such funnel in it.",
            )
        },
        f"{base}/journeys.json": {
            "get": _operation(
                "getJourneys",
                "The most common journeys of a date range",
                f"Sessions split where {int(sessions.GAP.total_seconds() // 60)} minutes "
                "pass without an event; a journey is a session's page paths, consecutive "
                f"repeats collapsed; the top {journeys.TOP} by sessions. A session belongs "
                "to the range in which it started.",
                [*_RANGE, *_JOURNEY],
                "Journeys",
                "journeys",
            )
        },
        f"{base}/journeys/next.json": {
            "get": _operation(
                "getNextSteps",
                "Where visitors go next from one page",
                "From the first visit of `path` in each session: the next page, or left "
                "(`path` null). Read from the first "
                f"{sessions.KEPT_STEPS} pages of a session: a session whose first visit of "
                "`path` is its last kept page and that has more is not counted.",
                [
                    *_RANGE,
                    *_JOURNEY,
                    _query(
                        "path",
                        "The page to start from.",
                        {"type": "string", "pattern": "^/"},
                        required=True,
                    ),
                ],
                "NextSteps",
                "next_steps",
            )
        },
        f"{base}/live.json": {
            "get": _live_operation(),
        },
    }


def _live_operation() -> dict:
    """GET live.json."""
    operation = _operation(
        "getLive",
        "Events and refused requests as they arrive",
        f"At most {live.PAGE} items, newest first: stored events and the requests refused "
        "for an identified key (kept for 7 days, at most 1,000 per site). Poll with the "
        "returned `cursor` as `after` for what came since; filters on type, rule or "
        f"visitor look at the site's newest {live.SCAN_WINDOW:,} events.",
        [
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
        ],
        "LiveFeed",
        "live",
    )
    operation["responses"]["200"]["headers"] = {
        "Cache-Control": {"schema": {"type": "string", "const": "no-store"}}
    }
    return operation


def session_scheme(cookie_name: str) -> dict:
    """The security scheme of the reports: the dashboard's session cookie."""
    return {
        "type": "apiKey",
        "in": "cookie",
        "name": cookie_name,
        "description": "The session cookie set by logging in to the dashboard (`/login`). "
        "Only the site's owner gets its reports; for anyone else the site does not exist "
        "(404), and without a valid cookie every report answers 401 `unauthorized`.",
    }
