"""The OpenAPI description of a site's reports as JSON, for its logged-in owner or a read key
(the Stats API): stats.json,
funnel.json, funnels/{funnel_id}.json, journeys.json, journeys/next.json and live.json.

The paths and their answers. The query parameters and their error codes are in
report_parameters, the answers' schemas in report_schemas; every error answer is the API's
one error envelope (`Error`), each 400 listing its report's parameter codes.
"""

from __future__ import annotations

from .. import live
from ..acquisition.dimensions import DIMENSIONS, NONE, NOT_RECORDED
from ..analytics import journeys, query, sessions
from ..analytics.funnels import definition as funnels
from ..keys import tokens
from .common import ref
from .report_parameters import ENDPOINT_ERRORS, csv_parameters, endpoint_parameters

#: One bad request per report, documented as its 400's example: (query parameters, the
#: parameter named, its code, the message). Tests send each and compare the answer.
BAD_REQUEST_EXAMPLES: dict[str, tuple[dict[str, str], str, str, str]] = {
    "stats": (
        {"from": "2026-01-02", "to": "2026-01-01"},
        "to",
        "before_from",
        "to must be on or after from",
    ),
    "breakdown": (
        {"dimension": "source", "filter": "planet==mars"},
        "filter",
        "unknown_dimension",
        "Unknown dimension 'planet': use one of " + ", ".join(DIMENSIONS) + " or prop:<key>.",
    ),
    "funnel": (
        {},
        "step",
        "step_count",
        f"a funnel has {funnels.MIN_STEPS} to {funnels.MAX_STEPS} steps, got 0",
    ),
    "saved_funnel": ({"from": "2026-01-01"}, "to", "missing", "to is required with from"),
    "journeys": ({"rule": "a|b"}, "rule", "invalid_rule", "rule must be a success rule name"),
    "next_steps": (
        {"path": "pricing"},
        "path",
        "invalid_path",
        "path must be a page path starting with /",
    ),
    "live": ({"refused": "maybe"}, "refused", "invalid_boolean", "refused must be 1 or 0"),
}


def _example(endpoint: str) -> dict:
    """The example of one report's 400 (an OpenAPI Example Object)."""
    query, field, code, message = BAD_REQUEST_EXAMPLES[endpoint]
    envelope, _table = ENDPOINT_ERRORS[endpoint]
    text = "&".join(f"{name}={value}" for name, value in query.items())
    return {
        "summary": f"`?{text}`" if text else "No parameters",
        "value": {
            "error": {
                "code": envelope,
                "message": message,
                "errors": [{"field": field, "code": code, "message": message}],
            }
        },
    }


def _bad_request(endpoint: str) -> dict:
    """The documented 400 of one endpoint: the error envelope, its codes explained (and
    listed for machines in `x-parameter-errors`)."""
    envelope, table = ENDPOINT_ERRORS[endpoint]
    lines = [
        f"- `{field}`: " + " ".join(f"`{code}`: {meaning}" for code, meaning in codes.items())
        for field, codes in table.items()
    ]
    _query, _field, code, _message = BAD_REQUEST_EXAMPLES[endpoint]
    return {
        "description": f"`{envelope}`: a bad parameter. `errors` holds one ParameterError, "
        "the first bad parameter (checked in order): `errors[0].field` names it, "
        "`errors[0].code` says what is wrong with it.\n\n" + "\n".join(lines),
        "content": {
            "application/json": {
                "schema": ref("schemas", "Error"),
                "examples": {code: _example(endpoint)},
            }
        },
        "x-parameter-errors": {
            "code": envelope,
            "fields": {field: list(codes) for field, codes in table.items()},
        },
    }


def responses() -> dict:
    """components/responses shared by the reports."""
    return {
        "ReadKeyRefused": {
            "description": "Not logged in (`unauthorized`), or the Authorization header's "
            "token refused: `missing_token`, `malformed_token`, `invalid_token`, "
            "`revoked_token`, or `wrong_key_kind` (a live or test key: the reports take a "
            "read key). A request with an Authorization header is judged by it alone, never "
            "by a session cookie sent with it. A JSON answer, never a redirect to the HTML "
            "log-in page.",
            "content": {"application/json": {"schema": ref("schemas", "Error")}},
        },
        "ReadKeyRateLimited": {
            "description": "`rate_limited`: the read key is over its limit (by default "
            "600 per hour, per key); wait `Retry-After` seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}},
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
    schema: str,
    endpoint: str,
    not_found: str | None = None,
) -> dict:
    """A GET of the reports: `endpoint`'s parameters, 200 with `schema`, its 400, 401, 404."""
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
        # Either one: a read key of the site, or the dashboard's session.
        "security": [{"readKey": []}, {"sessionCookie": []}],
        "parameters": endpoint_parameters(endpoint),
        "responses": {
            "200": {
                "description": "The report.",
                "content": {"application/json": {"schema": ref("schemas", schema)}},
            },
            "400": _bad_request(endpoint),
            "401": ref("responses", "ReadKeyRefused"),
            "404": missing,
            "429": ref("responses", "ReadKeyRateLimited"),
        },
    }


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
    return {
        f"{base}/stats.json": {
            "get": _operation(
                "getStats",
                "The dashboard's figures over a date range",
                "Totals with the previous period, success rules, the chart's series and "
                "the top pages, in the site's time zone and currency. Events appear within "
                "seconds of being stored; events of test keys are never counted.",
                "Stats",
                "stats",
            )
        },
        f"{base}/breakdown.json": {
            "get": _operation(
                "getBreakdown",
                "Where visitors come from, and any other dimension, over a date range",
                "One row per value of `dimension` (channel, source, campaign, country, "
                "device, a page, a property…), counted exactly from the range's events after "
                "the filters: distinct visitors, visits, page views, conversions, the "
                "conversion rate and revenue of the events with that value. channel, source, "
                "medium, campaign, term, content and referrer are a visit's, from its first "
                f"event; `{NONE}` is the row of events without a value, `{NOT_RECORDED}` that "
                "of events stored before the server recorded the dimension. Ordered by "
                f"visitors, most first, then by value; `limit` rows (at most {query.MAX_LIMIT}) "
                "from `offset`, of `total_rows`.",
                "Breakdown",
                "breakdown",
            )
        },
        f"{base}/funnel.json": {
            "get": _operation(
                "getFunnel",
                "An unsaved funnel over a date range",
                _FUNNEL_RULES,
                "FunnelReport",
                "funnel",
            )
        },
        f"{base}/funnels/{{funnel_id}}.json": {
            "get": _operation(
                "getSavedFunnel",
                "A saved funnel over a date range",
                _FUNNEL_RULES + " The steps, window and mode are the saved funnel's.",
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
                "NextSteps",
                "next_steps",
            )
        },
        f"{base}/live.json": {
            "get": _live_operation(),
        },
        f"{base}/reports/{{report}}.csv": {
            "get": _csv_operation(),
        },
    }


def _csv_operation() -> dict:
    """GET reports/{report}.csv: the dashboard's CSV downloads."""
    page = {"text/html": {"schema": {"type": "string"}}}
    return {
        "operationId": "getReportCsv",
        "tags": ["Reports"],
        "summary": "A report as a CSV download",
        "description": "The totals, the success rules, the chart's series, the top pages or "
        "a property's breakdown over a date range, as the dashboard's download links give "
        "them (formulas in cells are neutralised). Its errors of parameters and site are "
        "the dashboard's pages (HTML), not the JSON envelope; a refused token is JSON.",
        "security": [{"readKey": []}, {"sessionCookie": []}],
        "parameters": csv_parameters(),
        "responses": {
            "200": {
                "description": "The CSV file, as an attachment named after the site, report "
                "and range.",
                "headers": {"Content-Disposition": {"schema": {"type": "string"}}},
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            "302": {
                "description": "Neither a read key nor a session: a redirect to the log-in "
                "page (the download links are the dashboard's)."
            },
            "400": {"description": "A bad parameter, named on an HTML page.", "content": page},
            "401": ref("responses", "ReadKeyRefused"),
            "404": {
                "description": "No such site, or not the read key's (an HTML page).",
                "content": page,
            },
            "429": ref("responses", "ReadKeyRateLimited"),
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
        "LiveFeed",
        "live",
    )
    operation["responses"]["200"]["headers"] = {
        "Cache-Control": {"schema": {"type": "string", "const": "no-store"}}
    }
    return operation


def read_key_scheme() -> dict:
    """The security scheme of the Stats API: a site's read key as a Bearer token."""
    return {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": f"{tokens.READ_PREFIX}<key_id>_<secret>",
        "description": (
            f"`Authorization: Bearer {tokens.READ_PREFIX}<key_id>_<secret>`: a read key, "
            "created by the site's owner on its keys page (or `flask keys create --read`), "
            "shown once. Same format and checksum as the live and test keys. It reads the "
            "reports of its one site (another site answers 404) and nothing else; /event "
            "refuses it. No CORS headers are sent: call the reports from a server or a "
            "script, not from a web page."
        ),
    }


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
