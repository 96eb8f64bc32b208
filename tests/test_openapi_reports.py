"""/openapi.json beyond server events: the reports' JSON and POST /collect.

The whole document is valid OpenAPI 3.1; its facts come from the code's own tables; and
the real answers of every report endpoint and of /collect (a real app on a real SQLite
database, events sent through /event) match the documented status, headers and schema,
bad parameters included.
"""

from __future__ import annotations

import ast
import io
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from sqlalchemy.exc import OperationalError
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response

import datalook
from datalook import live
from datalook.analytics import journeys, ranges, sessions
from datalook.analytics.funnels import definition as funnels
from datalook.envelope import ApiError
from datalook.extensions import db
from datalook.ingest import collect as collect_module
from datalook.ingest import schema as event_schema
from datalook.ingest import storage
from datalook.models import Site
from datalook.openapi import report_parameters as described
from datalook.openapi import reports as described_reports
from tests.conftest import add_site, sign_up
from tests.factories import make_key
from tests.test_funnels_api import save_funnel

jsonschema = pytest.importorskip("jsonschema")
openapi_spec_validator = pytest.importorskip("openapi_spec_validator")

PACKAGE = Path(datalook.__file__).parent
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
SITE = "/sites/{site_id}"
# Headers documented for an answer that are sent only when they apply.
WHEN_THEY_APPLY = {
    "DataLook-Duplicate",
    "DataLook-Stripped-Keys",
    "DataLook-Ignored",
    "DataLook-Visit-Not-Joined",
}


# --- helpers ---------------------------------------------------------------------------------


def spec(client) -> dict:
    """GET /openapi.json."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def resolve(document: dict, node: dict) -> dict:
    """Follow local $refs until a real node is reached."""
    while "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(document: dict, schema: dict):
    """A JSON Schema 2020-12 validator (formats checked) of a schema of the document."""
    return jsonschema.Draft202012Validator(
        {**schema, "components": document["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def component(document: dict, name: str):
    """A validator of one component schema."""
    return validator(document, {"$ref": f"#/components/schemas/{name}"})


def problems(document: dict, path: str, method: str, response) -> list[str]:
    """What in a real answer differs from its documentation (empty: it matches)."""
    operation = document["paths"][path][method]
    status = str(response.status_code)
    if status not in operation["responses"]:
        return [f"{method.upper()} {path}: {status} is not documented"]
    documented = resolve(document, operation["responses"][status])
    found = [
        f"{status} lacks header {name}"
        for name in documented.get("headers", {})
        if name not in WHEN_THEY_APPLY and name not in response.headers
    ]
    for name, header in documented.get("headers", {}).items():
        if name in response.headers:
            header_schema = resolve(document, header)["schema"]
            value = response.headers[name]
            if header_schema.get("type") == "integer":
                value = int(value)
            found += [f"{status} header {name}: {e.message}" for e in _errors(header_schema, value)]
    content = documented.get("content")
    if content is None:
        return found + ([f"{status} has a body"] if response.get_data() else [])
    if response.mimetype not in content:
        return [*found, f"{status} is {response.mimetype}, documented {sorted(content)}"]
    schema = content[response.mimetype]["schema"]
    body = response.get_json() if response.is_json else response.get_data(as_text=True)
    errors = validator(document, schema).iter_errors(body)
    found += [f"{status} body at {list(e.absolute_path)}: {e.message}" for e in errors]
    if "x-parameter-errors" in documented:
        found += parameter_problems(documented["x-parameter-errors"], body)
    return found


def parameter_problems(listed: dict, body) -> list[str]:
    """A report's 400 against the codes its documentation lists: the envelope's code, one
    item, and a (parameter, code) pair of that report."""
    error = body.get("error", {}) if isinstance(body, dict) else {}
    items = error.get("errors") or []
    found = []
    if error.get("code") != listed["code"]:
        found.append(f"400 code {error.get('code')!r}, documented {listed['code']!r}")
    if len(items) != 1:
        found.append(f"400 has {len(items)} items in errors, documented 1")
    for item in items:
        pair = (item.get("field"), item.get("code"))
        if pair[1] not in listed["fields"].get(pair[0], []):
            found.append(f"400 names {pair[0]}/{pair[1]}, not documented for this report")
    return found


def _errors(schema: dict, value) -> list:
    """Errors of a value against a standalone schema (a header's)."""
    return list(jsonschema.Draft202012Validator(schema).iter_errors(value))


def now() -> datetime:
    """Naive UTC now, when the test runs."""
    return datetime.now(UTC).replace(tzinfo=None)


def iso(moment: datetime) -> str:
    """An event timestamp."""
    return moment.replace(tzinfo=UTC).isoformat()


# --- the document ----------------------------------------------------------------------------


def test_the_whole_document_is_valid_openapi_and_every_schema_valid_json_schema(client):
    document = spec(client)
    openapi_spec_validator.validate(document)
    for name, schema in document["components"]["schemas"].items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            pytest.fail(f"{name}: {exc.message}")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["operationId"], (path, method)
            assert operation["responses"], (path, method)


def test_the_report_facts_come_from_the_code(client):
    document = spec(client)
    parameters = document["components"]["parameters"]
    assert parameters["Period"]["schema"]["enum"] == list(ranges.PERIODS)
    assert parameters["Period"]["schema"]["default"] == ranges.DEFAULT_PERIOD
    assert parameters["JourneySteps"]["schema"]["maximum"] == sessions.KEPT_STEPS
    assert parameters["JourneySteps"]["schema"]["default"] == journeys.DEFAULT_STEPS
    step = document["components"]["schemas"]["FunnelStep"]
    assert set(step["properties"]) == set(funnels.Step("pageview").as_json())
    assert step["properties"]["event_name"]["enum"] == list(event_schema.EVENT_NAMES)
    funnel = document["paths"][f"{SITE}/funnel.json"]["get"]
    by_name = {p.get("name"): p for p in funnel["parameters"]}
    assert by_name["mode"]["schema"]["enum"] == list(funnels.MODES)
    assert by_name["window"]["schema"]["pattern"] == funnels.WINDOW_PATTERN
    assert by_name["step"]["schema"]["minItems"] == funnels.MIN_STEPS
    assert by_name["step"]["schema"]["maxItems"] == funnels.MAX_STEPS
    collect = document["paths"]["/collect"]["post"]
    assert set(collect["requestBody"]["content"]) == set(collect_module.MEDIA_TYPES)
    for media in collect["requestBody"]["content"].values():
        assert media["schema"] == {"$ref": "#/components/schemas/BrowserEvent"}
    exposed = document["components"]["headers"]["Access-Control-Expose-Headers"]
    assert exposed["schema"]["const"] == collect_module.EXPOSED_HEADERS


WINDOWS = ["1m", "90m", "24h", "7d", "30d", "999999d", "0m", "25", "1.5h", "h", "24H", " 24h"]
CURSORS = ["e0.r0", "e12.r3", "e1", "x", "e1.r1.x", "e" + "9" * 20 + ".r1", "E1.R1", "e-1.r0"]
KEY_IDS = ["AbC123", "a", "k" * 32, "k" * 33, "ab-c", "ab c", "é"]


@pytest.mark.parametrize("text", WINDOWS)
def test_the_window_pattern_accepts_what_the_parser_reads(text):
    try:
        funnels.parse_window(text)
        readable = True
    except funnels.ParameterError as exc:
        readable = exc.code != "invalid_window"  # out_of_range: well written, too long
    assert bool(re.search(funnels.WINDOW_PATTERN, text)) == readable


@pytest.mark.parametrize("text", CURSORS)
def test_the_cursor_pattern_accepts_what_live_json_reads(text):
    try:
        live.parse_cursor(text)
        accepted = True
    except ApiError:
        accepted = False
    assert bool(re.search(described.CURSOR_PATTERN, text)) == accepted


@pytest.mark.parametrize("text", KEY_IDS)
def test_the_key_id_pattern_accepts_what_live_json_reads(text):
    try:
        live.parse_filters({"key": text})
        accepted = True
    except ApiError:
        accepted = False
    assert bool(re.search(described.KEY_ID_PATTERN, text)) == accepted


def test_the_reports_are_for_a_read_key_or_the_session_and_collect_for_anyone(client):
    document = spec(client)
    for path, item in document["paths"].items():
        security = item.get("get", item.get("post", {})).get("security")
        if path.startswith("/sites/"):
            assert security == [{"readKey": []}, {"sessionCookie": []}], path
        elif path == "/collect":
            assert security == []
    assert document["components"]["securitySchemes"]["sessionCookie"]["name"] == "session"
    assert document["components"]["securitySchemes"]["readKey"]["bearerFormat"].startswith(
        "dl_read_"
    )


# --- parameter error codes cannot drift ------------------------------------------------------

# The calls that raise a report parameter's error: (field, code, message).
RAISERS = {"ParameterError", "parameter_error"}
# Codes built at run time (f"invalid_{key}"), which the scan cannot read; provoked below. The
# dimension's are a filter's dimension errors, named `dimension` (provoked in
# test_acquisition_api).
BUILT_CODES = {
    ("step", "invalid_name"),
    ("step", "invalid_key"),
    ("dimension", "unknown_dimension"),
    ("dimension", "invalid_property_key"),
}


def raised_parameter_codes() -> set[tuple[str | None, str]]:
    """Every (parameter, code) pair that the package raises with a literal code; the
    parameter is None where the code names it by a variable (one helper, several)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "openapi":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name == "FilterError" and node.args and isinstance(node.args[0], ast.Constant):
                found.add(("filter", node.args[0].value))  # a filter's error names `filter`
            if name in RAISERS and len(node.args) == 3:
                field, code = node.args[0], node.args[1]
                if isinstance(code, ast.Constant):
                    found.add(
                        (field.value if isinstance(field, ast.Constant) else None, code.value)
                    )
    return found


def documented_parameter_codes() -> set[tuple[str, str]]:
    """Every (parameter, code) pair that the description lists, over all endpoints."""
    return {
        (field, code)
        for _envelope, table in described.ENDPOINT_ERRORS.values()
        for field, codes in table.items()
        for code in codes
    }


def test_the_scan_finds_the_codes_it_should():
    raised = raised_parameter_codes()
    assert {("period", "unknown_period"), ("window", "invalid_window")} <= raised
    assert {("steps", "out_of_range"), ("after", "invalid_cursor"), ("path", "invalid_path")} <= (
        raised
    )
    assert {(None, "invalid_date"), (None, "invalid_path")} <= raised


def test_every_raised_parameter_code_is_documented_and_no_other():
    raised = raised_parameter_codes()
    documented = documented_parameter_codes()
    named = {pair for pair in raised if pair[0] is not None}
    by_variable = {code for field, code in raised if field is None}
    assert named - documented == set()
    assert by_variable - {code for _field, code in documented} == set()
    unexplained = {
        (field, code) for field, code in documented - named - BUILT_CODES if code not in by_variable
    }
    assert unexplained == set()


# --- the report endpoints answer as documented -----------------------------------------------


@pytest.fixture
def shop(app, client):
    """An owner's site with events sent through /event, a refused request and a saved
    funnel: (site id, key id, the owner's client)."""
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        made = make_key(db.session.get(Site, site_id), rate_limit="100000 per 10 seconds")
    ingest = app.test_client()
    headers = {"Authorization": f"Bearer {made.token}"}
    start = now() - timedelta(minutes=30)
    visits = [
        ("alice", "pageview", "/", None),
        ("alice", "pageview", "/pricing", None),
        ("alice", "success", "/checkout/success", 9.99),
        ("bob", "pageview", "/", None),
        ("bob", "pageview", "/pricing", None),
        (None, "click", "/", None),
        (None, "success", "/checkout/success", 0.000001),
    ]
    for minute, (user, kind, path, value) in enumerate(visits):
        event = {
            "event_name": kind,
            "page_path": path,
            "timestamp": iso(start + timedelta(minutes=minute)),
        }
        if user:
            event["success_user_id"] = user
        if kind == "success":
            event.update(name="paid-customer", success_value=value, properties={"plan": "pro"})
        answer = ingest.post("/event", json=event, headers=headers)
        assert answer.status_code == 204, answer.get_data(as_text=True)
    refused = ingest.post("/event", json={"event_name": "sale"}, headers=headers)
    assert refused.status_code == 400
    steps = [
        {"event_name": "pageview", "page_path": "/"},
        {"event_name": "pageview", "page_path": "/pricing"},
    ]
    funnel_id = save_funnel(client, site_id, "Pricing", steps)
    return site_id, made.key_id, funnel_id


def step(**fields) -> str:
    """One `step` parameter: a JSON object."""
    return json.dumps({"event_name": "pageview", **fields})


TODAY = 0  # a day offset from the site's today, computed when the test runs

GOOD_STEPS = {"step": [step(page_path="/"), step(page_path="/pricing")]}

# A bad date range: (parameters, parameter named, code); every ranged report answers it.
BAD_RANGES = [
    ({"period": "week"}, "period", "unknown_period"),
    (
        {"period": "7d", "from": "2026-01-01", "to": "2026-01-02"},
        "period",
        "conflicting_parameters",
    ),
    ({"from": "2026-01-01"}, "to", "missing"),
    ({"to": "2026-01-01"}, "from", "missing"),
    ({"from": "2026-1-1", "to": "2026-01-02"}, "from", "invalid_date"),
    ({"from": "2026-02-30", "to": "2026-03-02"}, "from", "invalid_date"),
    ({"from": "2026-01-01", "to": "tomorrow"}, "to", "invalid_date"),
    ({"from": "1999-12-31", "to": "2000-01-01"}, "from", "out_of_range"),
    ({"from": "2026-01-01", "to": "9999-01-01"}, "to", "out_of_range"),
    ({"from": "2026-01-02", "to": "2026-01-01"}, "to", "before_from"),
    ({"from": "2000-01-01", "to": "2025-01-01"}, "to", "range_too_long"),
]

# Good date ranges: each named period, and custom ranges of each chart granularity.
GOOD_RANGES = [{}, *({"period": key} for key in ranges.PERIODS)] + [
    {"from": TODAY, "to": TODAY},
    {"from": -9, "to": TODAY},
    {"from": -99, "to": TODAY},
    {"from": -399, "to": TODAY},
]

BAD_STEPS = [
    ({"step": [step()]}, "step_count"),
    ({"step": [step()] * 9}, "step_count"),
    ({"step": ["{", step()]}, "malformed_step"),
    ({"step": ["[1]", step()]}, "malformed_step"),
    ({"step": [step(url="/"), step()]}, "unknown_key"),
    ({"step": [step(event_name="purchase"), step()]}, "unknown_event_name"),
    ({"step": [step(page_path="pricing"), step()]}, "invalid_page_path"),
    ({"step": [step(page_path="/a*b"), step()]}, "invalid_page_path"),
    ({"step": [step(page_path="/a\tb"), step()]}, "invalid_page_path"),
    ({"step": [step(name=""), step()]}, "invalid_name"),
    ({"step": [step(name=" "), step()]}, "invalid_name"),
    ({"step": [step(name="n" * 101), step()]}, "invalid_name"),
    ({"step": [step(property={"key": "plan"}), step()]}, "invalid_property"),
    ({"step": [step(property={"key": "plan", "value": None}), step()]}, "invalid_property"),
    ({"step": [step(property={"key": "plan", "value": [1]}), step()]}, "invalid_property"),
    ({"step": [step(property={"key": "", "value": "a"}), step()]}, "invalid_key"),
    ({"step": [step(property={"key": "k" * 101, "value": "a"}), step()]}, "invalid_key"),
]

BAD_FUNNEL_OPTIONS = [
    ({"window": "25"}, "window", "invalid_window"),
    ({"window": "0m"}, "window", "invalid_window"),
    ({"window": "1.5h"}, "window", "invalid_window"),
    ({"window": "31d"}, "window", "out_of_range"),
    ({"window": "999999m"}, "window", "out_of_range"),
    ({"mode": "loose"}, "mode", "unknown_mode"),
]

GOOD_FUNNELS = [
    GOOD_STEPS,
    {**GOOD_STEPS, "window": "90m", "mode": "strict"},
    {**GOOD_STEPS, "window": "30d"},
    {
        "step": [
            step(page_path="/*"),
            step(page_path="/pricing", name=None, property=None),
            step(
                event_name="success", name="paid-customer", property={"key": "plan", "value": "pro"}
            ),
        ]
    },
    {"step": [step()] * 8},
]

BAD_JOURNEYS = [
    ({"steps": "0"}, "steps", "out_of_range"),
    ({"steps": "11"}, "steps", "out_of_range"),
    ({"steps": "five"}, "steps", "out_of_range"),
    ({"steps": "-1"}, "steps", "out_of_range"),
    ({"start": "pricing"}, "start", "invalid_path"),
    ({"end": "x"}, "end", "invalid_path"),
    ({"end": "/" + "a" * 2048}, "end", "invalid_path"),
    ({"rule": "a|b"}, "rule", "invalid_rule"),
    ({"rule": "r" * 101}, "rule", "invalid_rule"),
]

GOOD_JOURNEYS = [
    {},
    {"steps": "1"},
    {"steps": "10"},
    {"start": "/"},
    {"end": "/pricing", "steps": "2"},
    {"rule": "paid-customer"},
    {"start": "/nowhere"},
]

BAD_LIVE = [
    ({"after": "xyz"}, "after", "invalid_cursor"),
    ({"after": "e1"}, "after", "invalid_cursor"),
    ({"after": "e1.r1.x"}, "after", "invalid_cursor"),
    ({"type": "purchase"}, "type", "invalid_choice"),
    ({"rule": "r" * 101}, "rule", "too_long"),
    ({"key": "ab-c"}, "key", "invalid_key"),
    ({"key": "Zz9"}, "key", "unknown_key"),
    ({"visitor": "v" * 257}, "visitor", "too_long"),
    ({"refused": "maybe"}, "refused", "invalid_boolean"),
]


def resolved(params: dict, today: date) -> dict:
    """Parameters with day offsets from today (TODAY is 0) turned into dates."""
    out = {}
    for name, value in params.items():
        if isinstance(value, int):
            value = (today + timedelta(days=value)).isoformat()
        out[name] = value
    return out


def run_table(client, document, path, url, cases) -> list[str]:
    """GET each case; every answer must match its documentation; return what does not.

    A case is (parameters, expected status, expected (field, code) of a 400 or None)."""
    found = []
    today = ranges.today_in(ranges.zone("UTC"))
    for params, status, named in cases:
        query = urlencode(resolved(params, today), doseq=True)
        response = client.get(f"{url}?{query}")
        label = f"{path}?{query[:80]}"
        if response.status_code != status:
            found.append(
                f"{label}: {response.status_code}, wanted {status}: {response.data[:200]!r}"
            )
            continue
        found += [f"{label}: {p}" for p in problems(document, path, "get", response)]
        if named is not None:
            error = response.get_json()["error"]["errors"][0]
            if (error["field"], error["code"]) != named:
                found.append(f"{label}: named {error['field']}/{error['code']}, wanted {named}")
    return found


def test_stats_json_answers_as_documented(client, shop):
    site_id, _key, _funnel = shop
    document = spec(client)
    cases = [(params, 200, None) for params in GOOD_RANGES]
    cases += [(params, 400, (field, code)) for params, field, code in BAD_RANGES]
    url = f"/sites/{site_id}/stats.json"
    assert run_table(client, document, f"{SITE}/stats.json", url, cases) == []
    body = client.get(f"{url}?period=7d").get_json()
    assert body["totals"]["revenue"] == "9.990001"  # exact: never a float
    assert body["rules"][0]["revenue"] == "9.990001"


# A funnel's breakdown by the step-1 visit's channel or source, and a bad one.
BREAKDOWNS = [
    ({"breakdown": "channel", "period": "7d"}, 200, None),
    ({"breakdown": "source"}, 200, None),
    ({"breakdown": "country"}, 400, ("breakdown", "invalid_breakdown")),
]


def test_funnel_json_answers_as_documented(client, shop):
    site_id, _key, _funnel = shop
    document = spec(client)
    cases = [(params, 200, None) for params in GOOD_FUNNELS]
    cases += [({**GOOD_STEPS, **r}, 200, None) for r in GOOD_RANGES]
    cases += [({**GOOD_STEPS, **p}, 400, (f, c)) for p, f, c in BAD_RANGES]
    cases += [(params, 400, ("step", code)) for params, code in BAD_STEPS]
    cases += [({**GOOD_STEPS, **p}, 400, (f, c)) for p, f, c in BAD_FUNNEL_OPTIONS]
    cases.append(({}, 400, ("step", "step_count")))
    cases += [({**GOOD_STEPS, **p}, status, named) for p, status, named in BREAKDOWNS]
    url = f"/sites/{site_id}/funnel.json"
    assert run_table(client, document, f"{SITE}/funnel.json", url, cases) == []
    body = client.get(f"{url}?{urlencode(GOOD_STEPS, doseq=True)}&period=7d").get_json()
    assert [s["visitors"] for s in body["steps"]] == [2, 2]


def test_funnel_steps_valid_for_the_api_are_valid_for_the_schema_and_bad_ones_not(client):
    step_schema = component(spec(client), "FunnelStep")
    for params in GOOD_FUNNELS:
        for text in params["step"]:
            step_schema.validate(json.loads(text))
    for params, code in BAD_STEPS:
        if code == "step_count":
            continue
        try:
            first = json.loads(params["step"][0])
        except ValueError:
            continue  # not JSON at all: the parameter's content type refuses it
        assert not step_schema.is_valid(first), (code, first)


def test_saved_funnel_json_answers_as_documented(client, shop):
    site_id, _key, funnel_id = shop
    document = spec(client)
    cases = [(params, 200, None) for params in GOOD_RANGES]
    cases += [(params, 400, (field, code)) for params, field, code in BAD_RANGES]
    cases += BREAKDOWNS
    url = f"/sites/{site_id}/funnels/{funnel_id}.json"
    path = f"{SITE}/funnels/{{funnel_id}}.json"
    assert run_table(client, document, path, url, cases) == []
    missing = client.get(f"/sites/{site_id}/funnels/{funnel_id + 1}.json")
    assert problems(document, path, "get", missing) == []
    assert missing.status_code == 404


def test_journeys_json_answers_as_documented(client, shop):
    site_id, _key, _funnel = shop
    document = spec(client)
    cases = [(params, 200, None) for params in GOOD_JOURNEYS]
    cases += [(params, 200, None) for params in GOOD_RANGES]
    cases += [(params, 400, (field, code)) for params, field, code in BAD_RANGES]
    cases += [(params, 400, (field, code)) for params, field, code in BAD_JOURNEYS]
    url = f"/sites/{site_id}/journeys.json"
    assert run_table(client, document, f"{SITE}/journeys.json", url, cases) == []
    body = client.get(f"{url}?period=7d").get_json()
    assert body["sessions_total"] == 2


def test_next_steps_json_answers_as_documented(client, shop):
    site_id, _key, _funnel = shop
    document = spec(client)
    cases = [({"path": p}, 200, None) for p in ("/", "/pricing", "/checkout/success", "/no")]
    cases += [({"path": "/", **params}, 200, None) for params in GOOD_JOURNEYS]
    cases += [({"path": "/", **p}, 400, (f, c)) for p, f, c in BAD_RANGES + BAD_JOURNEYS]
    cases += [({}, 400, ("path", "invalid_path")), ({"path": "x"}, 400, ("path", "invalid_path"))]
    url = f"/sites/{site_id}/journeys/next.json"
    assert run_table(client, document, f"{SITE}/journeys/next.json", url, cases) == []
    body = client.get(f"{url}?path=/pricing&period=7d").get_json()
    assert {(n["path"], n["left"]) for n in body["next"]} == {
        ("/checkout/success", False),
        (None, True),
    }


def test_live_json_answers_as_documented(client, shop):
    site_id, key_id, _funnel = shop
    document = spec(client)
    url = f"/sites/{site_id}/live.json"
    first = client.get(url).get_json()
    kinds = {item["kind"] for item in first["items"]}
    assert kinds == {"event", "refused"}
    good = [
        {},
        {"after": first["cursor"]},
        {"after": "e0.r0"},
        {"type": "pageview"},
        {"rule": "paid-customer"},
        {"key": key_id},
        {"visitor": "alice"},
        {"refused": "1"},
        {"refused": "no", "type": "success"},
    ]
    cases = [(params, 200, None) for params in good]
    cases += [(params, 400, (field, code)) for params, field, code in BAD_LIVE]
    assert run_table(client, document, f"{SITE}/live.json", url, cases) == []


ALL_REPORTS = [
    ("stats.json", {}),
    ("funnel.json", GOOD_STEPS),
    ("funnels/{funnel_id}.json", {}),
    ("journeys.json", {}),
    ("journeys/next.json", {"path": "/"}),
    ("live.json", {}),
]


def test_other_users_get_404_and_visitors_get_401(app, client, shop):
    site_id, _key, funnel_id = shop
    document = spec(client)
    stranger = app.test_client()
    sign_up(stranger, "stranger@example.com")
    anonymous = app.test_client()
    found = []
    for report, params in ALL_REPORTS:
        path = f"{SITE}/{report}"
        url = f"/sites/{site_id}/{report.replace('{funnel_id}', str(funnel_id))}"
        url += f"?{urlencode(params, doseq=True)}"
        for who, status in ((stranger, 404), (anonymous, 401)):
            response = who.get(url)
            if response.status_code != status:
                found.append(f"{url}: {response.status_code}, wanted {status}")
            found += [f"{url}: {p}" for p in problems(document, path, "get", response)]
        assert anonymous.get(url).get_json()["error"]["code"] == "unauthorized"
    assert found == []


# Each endpoint of the description's tables, by its path under the site.
ENDPOINTS = {
    "stats": "stats.json",
    "breakdown": "breakdown.json",
    "funnel": "funnel.json",
    "saved_funnel": "funnels/{funnel_id}.json",
    "journeys": "journeys.json",
    "next_steps": "journeys/next.json",
    "live": "live.json",
    "attribution": "attribution.json",
}


def test_each_report_answers_the_example_of_its_400(client, shop):
    site_id, _key, funnel_id = shop
    document = spec(client)
    assert (
        set(ENDPOINTS)
        == set(described.ENDPOINT_ERRORS)
        == set(described_reports.BAD_REQUEST_EXAMPLES)
    )
    found = []
    for endpoint, report in ENDPOINTS.items():
        path = f"{SITE}/{report}"
        media = document["paths"][path]["get"]["responses"]["400"]["content"]["application/json"]
        query = described_reports.BAD_REQUEST_EXAMPLES[endpoint][0]
        url = f"/sites/{site_id}/{report.replace('{funnel_id}', str(funnel_id))}"
        response = client.get(f"{url}?{urlencode(query)}")
        found += [f"{url}: {p}" for p in problems(document, path, "get", response)]
        documented = [example["value"] for example in media["examples"].values()]
        if documented != [response.get_json()]:
            found.append(f"{url}: answered {response.get_json()}, documented {documented}")
    assert found == []


# --- POST /collect answers as documented ------------------------------------------------------


@pytest.fixture
def browser_site(app, shop) -> str:
    """The public site key of the shop (its domain, example.com, is an allowed origin)."""
    site_id = shop[0]
    with app.app_context():
        return db.session.get(Site, site_id).site_key


def beacon(client, key: str | None, body, **options):
    """POST /collect as the script does, with overrides."""
    headers = {"Origin": "https://example.com", "User-Agent": CHROME}
    headers.update(options.pop("headers", {}))
    headers = {name: value for name, value in headers.items() if value is not None}
    query = "" if key is None else f"?site={key}"
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    content_type = options.pop("content_type", "text/plain;charset=UTF-8")
    method = options.pop("method", "POST")
    return client.open(
        f"/collect{query}", method=method, data=data, headers=headers, content_type=content_type
    )


PAGEVIEW = {"event_name": "pageview", "page_path": "/"}


def collect_cases(key: str):
    """(label, request options, expected status, expected error code or header)."""
    big = {**PAGEVIEW, "page_path": "/" + "a" * (collect_module.MAX_COLLECT_BYTES + 1)}
    return [
        ("stored", (key, PAGEVIEW), {}, 204, None),
        ("json type", (key, PAGEVIEW), {"content_type": "application/json"}, 204, None),
        (
            "stripped",
            (key, {**PAGEVIEW, "properties": {"email": "a@b.c"}}),
            {},
            204,
            "DataLook-Stripped-Keys",
        ),
        ("first", (key, {**PAGEVIEW, "event_id": "p-1"}), {}, 204, None),
        ("duplicate", (key, {**PAGEVIEW, "event_id": "p-1"}), {}, 204, "DataLook-Duplicate"),
        ("bot", (key, PAGEVIEW), {"headers": {"User-Agent": "curl/8.0"}}, 204, "DataLook-Ignored"),
        ("no key", (None, PAGEVIEW), {}, 400, "invalid_request"),
        ("not json", (key, "{"), {}, 400, "invalid_json"),
        ("empty", (key, ""), {}, 400, "invalid_json"),
        ("invalid", (key, {"event_name": "sale", "page_path": "x"}), {}, 400, "invalid_request"),
        ("unknown key", ("nosuchkey", PAGEVIEW), {}, 403, "invalid_site_key"),
        (
            "other origin",
            (key, PAGEVIEW),
            {"headers": {"Origin": "https://evil.example"}},
            403,
            "origin_not_allowed",
        ),
        ("no origin", (key, PAGEVIEW), {"headers": {"Origin": None}}, 403, "origin_not_allowed"),
        ("too large", (key, big), {}, 413, "payload_too_large"),
        ("html", (key, PAGEVIEW), {"content_type": "text/html"}, 415, "unsupported_media_type"),
        ("preflight", (key, ""), {"method": "OPTIONS", "content_type": None}, 204, None),
        (
            "preflight no key",
            (None, ""),
            {"method": "OPTIONS", "content_type": None},
            400,
            "invalid_request",
        ),
        (
            "preflight other origin",
            (key, ""),
            {
                "method": "OPTIONS",
                "content_type": None,
                "headers": {"Origin": "http://evil.example"},
            },
            403,
            "origin_not_allowed",
        ),
    ]


def check_collect(document, label, response, status, expected) -> list[str]:
    """One /collect answer against its documentation and the case's expectation."""
    if response.status_code != status:
        return [f"{label}: {response.status_code}, wanted {status}: {response.data[:200]!r}"]
    method = "options" if label.startswith("preflight") else "post"
    found = [f"{label}: {p}" for p in problems(document, "/collect", method, response)]
    if expected and expected.startswith("DataLook-"):
        if expected not in response.headers:
            found.append(f"{label}: no {expected}")
    elif expected:
        code = response.get_json()["error"]["code"]
        if code != expected:
            found.append(f"{label}: code {code}, wanted {expected}")
    return found


def test_collect_answers_as_documented(client, browser_site):
    document = spec(client)
    found = []
    for label, (key, body), options, status, expected in collect_cases(browser_site):
        response = beacon(client, key, body, **options)
        found += check_collect(document, label, response, status, expected)
    assert found == []


def test_collect_limits_and_outages_answer_as_documented(make_app, monkeypatch):
    app = make_app(COLLECT_ADDRESS_LIMIT="1 per minute")
    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        key = db.session.get(Site, site_id).site_key
    document = spec(client)
    found = check_collect(document, "first", beacon(client, key, PAGEVIEW), 204, None)
    found += check_collect(document, "limited", beacon(client, key, PAGEVIEW), 429, "rate_limited")
    guesses = [beacon(client, f"guess{n}", PAGEVIEW) for n in range(61)]
    found += check_collect(document, "guessing", guesses[-1], 429, "rate_limited")

    def unavailable(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(storage, "store", unavailable)
    # From another address: this one is over its limit, which is checked first.
    outage = client.post(
        f"/collect?site={key}",
        data=json.dumps(PAGEVIEW),
        headers={"Origin": "https://example.com", "User-Agent": CHROME},
        content_type="text/plain",
        environ_base={"REMOTE_ADDR": "198.51.100.2"},
    )
    found += check_collect(document, "unavailable", outage, 503, "unavailable")
    assert found == []


# --- the docs page states the contracts ------------------------------------------------------

REPORT_FACTS = [
    "GET /sites/<site_id>/stats.json",
    "funnel.json",
    "funnels/<funnel_id>.json",
    "journeys.json",
    "journeys/next.json",
    "live.json",
    "404",
    "401",
    "both days inclusive",
    "decimal string, never a float",
    "previous",
    "visitors_exact",
    "events_without_visitor",
    "a visitor is a distinct success_user_id",
    "never as visitors",
    "counted once",
    "local midnight",
    "test key",
    "archived ones included",
    "conversion window",
    "excluded_events_without_visitor",
    "strict",
    "30 minutes",
    "sessions_total",
    "cursor",
    "Cache-Control: no-store",
    "/openapi.json",
]


def docs_text(client) -> str:
    """The reports docs page as a reader sees it."""
    import html
    import re

    response = client.get("/docs/reports")
    assert response.status_code == 200
    text = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))
    return re.sub(r"\s+", " ", html.unescape(text))


def test_the_docs_state_the_contracts_and_the_rules_of_counting(client):
    text = docs_text(client).lower()
    missing = [fact for fact in REPORT_FACTS if fact.lower() not in text]
    assert missing == []


def test_the_docs_list_every_period_and_every_parameter_error(client):
    response = client.get("/docs/reports")
    markup = response.get_data(as_text=True)
    missing = [key for key in ranges.PERIODS if f"<code>{key}</code>" not in markup]
    missing += [
        f"{field}/{code}"
        for _envelope, table in described.ENDPOINT_ERRORS.values()
        for field, codes in table.items()
        for code in codes
        if f"<code>{field}</code>" not in markup or f"<code>{code}</code>" not in markup
    ]
    missing += [
        envelope
        for envelope, _table in described.ENDPOINT_ERRORS.values()
        if f"<code>{envelope}</code>" not in markup
    ]
    assert missing == []


class BrokenStream(io.RawIOBase):
    """A request stream that fails the way a server's reader does on a malformed body."""

    def read(self, size: int = -1) -> bytes:
        raise ValueError("Invalid chunk size")


def test_collect_answers_an_unreadable_body_400_as_documented(app, client, browser_site):
    builder = EnvironBuilder(
        path=f"/collect?site={browser_site}",
        method="POST",
        headers={"Origin": "https://example.com", "User-Agent": CHROME},
        content_type="text/plain",
    )
    environ = builder.get_environ()
    environ.update(
        {"wsgi.input": BrokenStream(), "wsgi.input_terminated": True},
        HTTP_TRANSFER_ENCODING="chunked",
    )
    environ.pop("CONTENT_LENGTH", None)
    response = Response.from_app(app.wsgi_app, environ)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_body"
    assert problems(spec(client), "/collect", "post", response) == []
