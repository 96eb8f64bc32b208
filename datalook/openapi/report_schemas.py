"""The schemas of the reports' JSON answers in the OpenAPI description: stats.json (built
from the field tables of analytics/reports/model.py, which stats.json is written from),
funnel.json, journeys.json, journeys/next.json, live.json, Freshness (how current each
report but live.json is), and ParameterError, the item of the error envelope that names a
bad query parameter.
"""

from __future__ import annotations

from collections.abc import Iterable

from .. import live
from ..analytics import journeys, query, sessions
from ..analytics.funnels import definition as funnels
from ..analytics.reports import model as report_model
from ..analytics.reports import pages as report_pages
from ..analytics.reports.model import JsonField, JsonKind
from ..config import DEFAULT_EXACT_EVENTS
from ..ingest.schema import EVENT_NAMES, MAX_NAME, MAX_PATH
from ..models import KEY_KIND_LIVE, KEY_KIND_READ, KEY_KIND_TEST
from .common import MESSAGE, enum_description, ref
from .funnel_breakdown import funnel_breakdown_schema
from .report_parameters import CURSOR_PATTERN, ENDPOINT_ERRORS

#: Money: an exact decimal string, never a float (negative values are allowed in events).
MONEY_PATTERN = "^-?[0-9]+(\\.[0-9]+)?$"

# Control characters, refused in a step's texts; a text must also hold a visible character.
_CONTROL = "\\x00-\\x1f\\x7f"
_VISIBLE = f"^(?=.*\\S)[^{_CONTROL}]*$"


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


#: The facts that model.py's descriptions name in braces (their modules import model.py).
FACTS = {"exact_limit": f"{DEFAULT_EXACT_EVENTS:,}"}

#: The schema of each kind of figure, as serialise.py writes it.
KIND_SCHEMAS: dict[JsonKind, dict] = {
    JsonKind.COUNT: _COUNT,
    JsonKind.MONEY: ref("schemas", "Money"),
    JsonKind.RATIO: _RATIO,
    JsonKind.FLAG: {"type": "boolean"},
    JsonKind.TEXT: {"type": "string"},
}


def _field_schema(field: JsonField) -> dict:
    """The schema of one field of a row: its kind's, with the field's description."""
    schema = KIND_SCHEMAS[field.kind]
    if field.description is None:
        return schema
    description = field.description.format_map(FACTS)
    if "$ref" in schema:
        return {"allOf": [schema], "description": description}
    return {**schema, "description": description}


def row_schema(fields: Iterable[JsonField]) -> dict:
    """The closed object of one row of the reports, from its JSON field table (model.py)."""
    return _object({field.name: _field_schema(field) for field in fields})


def _freshness_schema() -> dict:
    """How current a report is (the `freshness` of every report JSON but live.json)."""
    return _object(
        {
            "complete": {
                "type": "boolean",
                "description": "Every event stored when the report was asked for is counted. "
                "`false` when the fold process is behind further than a report may catch up "
                "within its budget (REPORT_CATCHUP_BUDGET_MS): the figures are then those "
                "folded so far, and newer events show once they are folded.",
            },
            "folded_until": {
                "type": ["string", "null"],
                "format": "date-time",
                "pattern": "Z$",
                "description": "When the last event counted was received (of the table "
                "furthest behind, when the report reads several): events received up to "
                "then are counted. null while no event is stored at all.",
            },
            "pending_events": {
                **_COUNT,
                "description": "Stored events not counted yet, estimated from the event ids "
                "(0 when complete, but for the few whose earlier ids are still being "
                "committed on PostgreSQL).",
            },
        },
        "How current the report is. Reports read tables that the fold process keeps "
        "up to date with the events; a request catches up what is left for a bounded "
        "time, and otherwise answers from what is folded, as this says.",
    )


def _freshness() -> dict:
    """The `freshness` property of a report."""
    return ref("schemas", "Freshness")


def _stats_schemas() -> dict:
    """The schemas of stats.json."""
    return {
        "Money": {
            "type": "string",
            "pattern": MONEY_PATTERN,
            "description": "An exact decimal amount in the site's currency, as a string "
            "(never a float): every stored digit, and at least the currency's minor digits.",
            "examples": ["25.29", "0.00", "1.000001"],
        },
        "StatsTotals": row_schema(report_model.TOTALS_JSON),
        "StatsRule": row_schema(report_model.RULE_JSON),
        "StatsSeriesPoint": row_schema(report_model.SERIES_JSON),
        "StatsPage": row_schema(report_model.PAGE_JSON),
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
                    "items": ref("schemas", "StatsRule"),
                },
                "series": {
                    "type": "array",
                    "description": "The chart's buckets: per hour up to 2 days (`start` "
                    "like `2026-11-01T14:00+0100`), per day up to 90, per week (from "
                    "Monday; the first may be partial) up to 366, per month beyond.",
                    "items": ref("schemas", "StatsSeriesPoint"),
                },
                "pages": {
                    "type": "array",
                    "maxItems": report_pages.TOP_PAGES,
                    "description": f"The top {report_pages.TOP_PAGES} pages by events.",
                    "items": ref("schemas", "StatsPage"),
                },
                "freshness": _freshness(),
            }
        ),
    }


def _attribution_schemas() -> dict:
    """The schemas of attribution.json."""
    money = {"type": "string", "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}
    return {
        "AttributionRow": _object(
            {
                "value": {"type": "string", "description": "The visits' value (`(none)`)."},
                "conversions": {
                    "type": "number",
                    "minimum": 0,
                    "description": "Conversions credited: whole, but for `linear` (shares "
                    "rounded to 4 decimals).",
                },
                "converters": {**_COUNT, "description": "People credited any share."},
                "revenue": {**money, "description": "Revenue credited, exact."},
            }
        ),
        "Attribution": _object(
            {
                "site": {"type": "string", "description": "The site's domain."},
                "timezone": {"type": "string", "description": "The IANA name that cut the days."},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "rule": {"type": ["string", "null"], "description": "null: every success."},
                "model": {"type": "string", "enum": ["first", "last", "linear"]},
                "dimension": {"type": "string"},
                "lookback": {"type": "string", "examples": ["30d", "36h"]},
                "filters": {"type": "array", "items": {"type": "string"}},
                "rows": {"type": "array", "items": ref("schemas", "AttributionRow")},
                "unattributed": _object(
                    {"conversions": {**_COUNT}, "revenue": {**money}},
                ),
                "freshness": _freshness(),
            }
        ),
    }


def _breakdown_schemas() -> dict:
    """The schemas of breakdown.json."""
    return {
        "BreakdownRow": row_schema(report_model.DIMENSION_ROW_JSON),
        "Breakdown": _object(
            {
                "site": {"type": "string", "description": "The site's domain."},
                "timezone": {"type": "string", "description": "The IANA name that cut the days."},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "dimension": {
                    "type": "string",
                    "description": "The dimension, as parsed (`prop:<key>` for a property).",
                },
                "filters": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The filters applied, as parsed.",
                },
                "rows": {
                    "type": "array",
                    "maxItems": query.MAX_LIMIT,
                    "items": ref("schemas", "BreakdownRow"),
                    "description": "At most `limit` rows from `offset`: by visitors, most "
                    "first, then by value.",
                },
                "total_rows": {**_COUNT, "description": "The dimension's values in all."},
                "visitors_exact": {
                    "type": "boolean",
                    "description": "False when `visitors` and `conversion_rate` are "
                    "HyperLogLog estimates (error within about 1%): an unfiltered breakdown "
                    "(not of `prop:<key>`) of a range whose whole UTC days hold more than "
                    "{exact_limit} events (the server's default limit). The other figures "
                    "stay exact.".format(**FACTS),
                },
                "limit": {"type": "integer", "minimum": 1, "maximum": query.MAX_LIMIT},
                "offset": {**_COUNT},
                "freshness": _freshness(),
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
    report = {
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
                "freshness": _freshness(),
            }
        ),
    }
    # Only with `breakdown` (the funnel per value of the step-1 visit's acquisition).
    steps = report["FunnelReport"]["properties"]["steps"]
    report["FunnelReport"]["properties"]["breakdown"] = funnel_breakdown_schema(steps)
    return report


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
                "freshness": _freshness(),
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
                "freshness": _freshness(),
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
                # A read key appears only in the list of the site's keys (it sends nothing).
                "kind": {"type": "string", "enum": [KEY_KIND_LIVE, KEY_KIND_TEST, KEY_KIND_READ]},
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
                "kind": {"type": "string", "enum": ["refused", "duplicate", "not_joined"]},
                "id": {"type": "string", "pattern": "^r[0-9]+$"},
                "time": time,
                "status": {"type": "integer", "description": "The answer's status."},
                "code": {
                    "type": "string",
                    "description": "The envelope's code (`duplicate`; `context_too_old` for "
                    "a `not_joined` server event).",
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
                "bots": {
                    "type": "object",
                    "required": ["days", "requests", "by_bot"],
                    "additionalProperties": False,
                    "description": "Browser requests dropped as bots (never stored) over "
                    "the last `days` UTC days, and the bots that sent most of them.",
                    "properties": {
                        "days": {"type": "integer", "minimum": 1},
                        "requests": {"type": "integer", "minimum": 0},
                        "by_bot": {
                            "type": "array",
                            "maxItems": live.MAX_BOTS_NAMED,
                            "items": {
                                "type": "object",
                                "required": ["bot", "requests"],
                                "additionalProperties": False,
                                "properties": {
                                    "bot": {
                                        "type": "string",
                                        "description": "e.g. HeadlessChrome, Googlebot.",
                                    },
                                    "requests": {"type": "integer", "minimum": 1},
                                },
                            },
                        },
                    },
                },
            },
        },
    }


def _parameter_error() -> dict:
    """One problem with one query parameter."""
    return {
        "type": "object",
        "description": "A report's bad query parameter (the first one, checked in order).",
        "required": ["field", "code", "message"],
        "additionalProperties": False,
        "properties": {
            "field": {"type": "string", "description": "The query parameter."},
            "code": ref("schemas", "ParameterErrorCode"),
            "message": MESSAGE,
        },
    }


def _parameter_error_code() -> dict:
    """Every code of a bad query parameter, over all reports, with the parameters it names."""
    fields: dict[str, list[str]] = {}
    for _envelope, table in ENDPOINT_ERRORS.values():
        for field, codes in table.items():
            for code in codes:
                named = fields.setdefault(code, [])
                if field not in named:
                    named.append(field)
    names = {code: ", ".join(f"`{field}`" for field in named) for code, named in fields.items()}
    return {
        "type": "string",
        "enum": list(fields),
        "description": "What is wrong with a report's query parameter (each report's 400 "
        "says what each code means for each of its parameters), and the parameters it can "
        "name:\n\n" + enum_description(names),
    }


def schemas() -> dict:
    """components/schemas of the reports."""
    return {
        "Freshness": _freshness_schema(),
        **_stats_schemas(),
        **_breakdown_schemas(),
        **_attribution_schemas(),
        **_funnel_schemas(),
        **_journey_schemas(),
        **_live_schemas(),
        "ParameterError": _parameter_error(),
        "ParameterErrorCode": _parameter_error_code(),
    }
