"""/openapi.json's shared components.

Every error answer is the one `Error` envelope: no answer describes its own error body, so a
client generated from the document has one error class, whatever the endpoint. The schemas
of stats.json are built from the JSON field tables of analytics/reports/model.py, which
stats.json is written from: a field added to a table appears in both, in the same order.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from datalook import openapi
from datalook.analytics.backlog import Freshness
from datalook.analytics.ranges import DateRange
from datalook.analytics.reports import model, serialise
from datalook.analytics.reports.model import JsonField, JsonKind
from datalook.openapi import report_parameters, report_schemas, reports

jsonschema = pytest.importorskip("jsonschema")

ERROR = {"$ref": "#/components/schemas/Error"}
MONEY = {"$ref": "#/components/schemas/Money"}
# Statuses of 400 or more whose body is not an error: the readiness probe's 503 is its state
# (the Readiness body of its 200), read by load balancers.
NOT_ERRORS = {
    ("/readyz", "get", "503"),
    # The CSV downloads' own errors are the dashboard's HTML pages.
    ("/sites/{site_id}/reports/{report}.csv", "get", "400"),
    ("/sites/{site_id}/reports/{report}.csv", "get", "404"),
}
# Each report endpoint of the description's tables, by its path.
REPORT_PATHS = {
    "stats": "/sites/{site_id}/stats.json",
    "breakdown": "/sites/{site_id}/breakdown.json",
    "funnel": "/sites/{site_id}/funnel.json",
    "saved_funnel": "/sites/{site_id}/funnels/{funnel_id}.json",
    "journeys": "/sites/{site_id}/journeys.json",
    "next_steps": "/sites/{site_id}/journeys/next.json",
    "live": "/sites/{site_id}/live.json",
}
# stats.json's row schemas and the field table and dataclass each is built from.
ROWS = {
    "StatsTotals": (model.TOTALS_JSON, model.Totals),
    "StatsRule": (model.RULE_JSON, model.RuleRow),
    "StatsSeriesPoint": (model.SERIES_JSON, model.SeriesPoint),
    "StatsPage": (model.PAGE_JSON, model.PageRow),
}


@pytest.fixture
def document() -> dict:
    return openapi.document("http://localhost")


def resolve(document: dict, node: dict) -> dict:
    """Follow local $refs until a real node is reached."""
    while "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def validator(document: dict, name: str):
    """A JSON Schema 2020-12 validator (formats checked) of one component schema."""
    return jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{name}", "components": document["components"]},
        format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
    )


def error_answers(document: dict):
    """(path, method, status, response as written) of every status of 400 or more."""
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    yield path, method, status, response


def walk(node, where: tuple = ()):
    """Every node of a JSON document with its path."""
    yield where, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*where, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*where, str(index)))


# --- one error envelope ----------------------------------------------------------------------


def test_every_error_answer_is_the_shared_error_envelope(document):
    answers = list(error_answers(document))
    assert len(answers) >= 30  # ingestion, collect, probes and six reports
    found = []
    for path, method, status, response in answers:
        label = f"{method.upper()} {path} {status}"
        if "$ref" in response:
            if not response["$ref"].startswith("#/components/responses/"):
                found.append(f"{label}: refers to {response['$ref']}")
                continue
            response = resolve(document, response)
        if (path, method, status) in NOT_ERRORS:
            continue
        if not response.get("content"):
            found.append(f"{label}: no body documented")
        for media, body in response.get("content", {}).items():
            if body.get("schema") != ERROR:
                found.append(f"{label} {media}: {body.get('schema')}, not the Error envelope")
    assert found == []


def test_the_readiness_503_is_the_probes_state_not_an_error(document):
    responses = document["paths"]["/readyz"]["get"]["responses"]
    assert responses["503"]["content"] == responses["200"]["content"]


def test_no_schema_but_error_describes_an_error_envelope(document):
    envelopes = [
        "/".join(where)
        for where, node in walk(document)
        if isinstance(node, dict)
        and isinstance(node.get("properties"), dict)
        and "error" in node["properties"]
    ]
    assert envelopes == ["components/schemas/Error"]


def test_the_envelope_takes_field_and_parameter_errors_and_no_other(document):
    error = validator(document, "Error")

    def envelope(*items: dict) -> dict:
        return {"error": {"code": "invalid_request", "message": "m", "errors": list(items)}}

    event = {"field": "success_value", "code": "not_a_number", "message": "m"}
    parameter = {"field": "to", "code": "before_from", "message": "m"}
    error.validate(envelope(event))
    error.validate(envelope(parameter))
    error.validate({"error": {"code": "rate_limited", "message": "m", "retry_after": 3}})
    assert not error.is_valid(envelope({"field": "to", "code": "no_such_code", "message": "m"}))
    assert not error.is_valid(envelope({"field": "to", "code": "before_from"}))
    assert not error.is_valid({"error": {"code": "no_such_code", "message": "m"}})


def test_the_parameter_codes_are_those_of_every_report(document):
    codes = document["components"]["schemas"]["ParameterErrorCode"]
    listed = {
        code
        for _envelope, table in report_parameters.ENDPOINT_ERRORS.values()
        for field_codes in table.values()
        for code in field_codes
    }
    assert set(codes["enum"]) == listed
    assert len(codes["enum"]) == len(listed)
    assert all(f"`{code}`" in codes["description"] for code in listed)
    item = document["components"]["schemas"]["ParameterError"]
    assert item["properties"]["code"] == {"$ref": "#/components/schemas/ParameterErrorCode"}


def test_each_report_400_lists_its_parameters_and_their_codes(document):
    assert set(REPORT_PATHS) == set(report_parameters.ENDPOINT_ERRORS)
    for endpoint, path in REPORT_PATHS.items():
        operation = document["paths"][path]["get"]
        response = operation["responses"]["400"]
        envelope, table = report_parameters.ENDPOINT_ERRORS[endpoint]
        fields = {field: list(codes) for field, codes in table.items()}
        assert response["x-parameter-errors"] == {"code": envelope, "fields": fields}, path
        for field, codes in table.items():
            assert f"- `{field}`: " in response["description"], (path, field)
            for code, meaning in codes.items():
                assert f"`{code}`: {meaning}" in response["description"], (path, code)
        names = {resolve(document, parameter)["name"] for parameter in operation["parameters"]}
        assert set(table) <= names, path


def test_each_400_example_is_an_error_its_report_lists(document):
    error = validator(document, "Error")
    for endpoint, path in REPORT_PATHS.items():
        response = document["paths"][path]["get"]["responses"]["400"]
        listed = response["x-parameter-errors"]
        examples = response["content"]["application/json"]["examples"]
        assert len(examples) == 1, path
        for example in examples.values():
            body = example["value"]
            error.validate(body)
            assert body["error"]["code"] == listed["code"]
            [item] = body["error"]["errors"]
            assert item["code"] in listed["fields"][item["field"]], (path, item)
        query = reports.BAD_REQUEST_EXAMPLES[endpoint][0]
        for name, value in query.items():
            assert f"{name}={value}" in example["summary"], path


# --- stats.json from the model's field tables ------------------------------------------------

SITE = SimpleNamespace(domain="shop.example", currency="EUR")
STATS = model.Stats(
    range=DateRange(date(2026, 3, 1), date(2026, 3, 7), ZoneInfo("Europe/Berlin")),
    totals=model.Totals(9, 5, 2, 1, 1, 1_500_000, 3, 4, 1, False),
    previous=model.Totals(),
    rules=[model.RuleRow("paid", "Paid", False, 1, 1, 1 / 3, 1_500_000)],
    series=[model.SeriesPoint("2026-03-01", 9, 4, 1, 1_500_000)],
    pages=[model.PageRow("/pricing", 5, 3)],
    granularity="day",
)
FRESH = Freshness(False, datetime(2026, 3, 7, 14, 2, 11), 1_200_000)


def test_the_stats_row_schemas_are_the_models_field_tables(document):
    schemas = document["components"]["schemas"]
    for name, (fields, _row) in ROWS.items():
        schema = schemas[name]
        names = [field.name for field in fields]
        assert list(schema["properties"]) == names, name
        assert schema["required"] == names, name
        assert schema["additionalProperties"] is False, name
        for field in fields:
            written = schema["properties"][field.name]
            kind = report_schemas.KIND_SCHEMAS[field.kind]
            assert (
                written == kind
                or written.get("allOf") == [kind]
                or written
                == {
                    **kind,
                    "description": written.get("description"),
                }
            ), (name, field.name)
            if field.kind is JsonKind.MONEY:
                assert MONEY in (written, *written.get("allOf", [])), (name, field.name)
    stats = schemas["Stats"]["properties"]
    assert stats["totals"] == {"$ref": "#/components/schemas/StatsTotals"}
    assert stats["previous"]["allOf"] == [{"$ref": "#/components/schemas/StatsTotals"}]
    assert stats["rules"]["items"] == {"$ref": "#/components/schemas/StatsRule"}
    assert stats["series"]["items"] == {"$ref": "#/components/schemas/StatsSeriesPoint"}
    assert stats["pages"]["items"] == {"$ref": "#/components/schemas/StatsPage"}


def test_every_kind_has_a_schema_and_every_field_an_attribute_of_its_row():
    assert set(report_schemas.KIND_SCHEMAS) == set(JsonKind)
    for name, (fields, row) in ROWS.items():
        names = [field.name for field in fields]
        assert len(set(names)) == len(names), name
        attributes = {f.name for f in dataclasses.fields(row)} | {
            key for key, value in vars(row).items() if isinstance(value, property)
        }
        assert {field.attribute for field in fields} <= attributes, name


def test_stats_json_writes_the_tables_in_order_as_documented(document):
    body = serialise.stats_json(SITE, STATS, FRESH)
    assert list(body) == list(document["components"]["schemas"]["Stats"]["properties"])
    for key, (fields, _row) in (
        ("totals", ROWS["StatsTotals"]),
        ("previous", ROWS["StatsTotals"]),
        ("rules", ROWS["StatsRule"]),
        ("series", ROWS["StatsSeriesPoint"]),
        ("pages", ROWS["StatsPage"]),
    ):
        rows = body[key] if isinstance(body[key], list) else [body[key]]
        assert rows and all(list(row) == [f.name for f in fields] for row in rows), key
    assert body["totals"]["revenue"] == "1.50"
    assert body["totals"]["visitors_exact"] is False
    assert body["rules"][0]["conversion_rate"] == 0.333333
    assert body["series"][0]["start"] == "2026-03-01"
    validator(document, "Stats").validate(body)


def test_a_field_added_to_a_table_appears_in_the_answer_and_in_its_schema(monkeypatch):
    added = JsonField("converters", JsonKind.COUNT, description="Visitors who converted.")
    monkeypatch.setattr(model, "TOTALS_JSON", (*model.TOTALS_JSON, added))
    document = openapi.document("http://localhost")
    body = serialise.stats_json(SITE, STATS, FRESH)
    assert list(body["totals"])[-1] == "converters"
    assert body["totals"]["converters"] == STATS.totals.converters
    totals = document["components"]["schemas"]["StatsTotals"]
    assert list(totals["properties"])[-1] == "converters"
    assert totals["properties"]["converters"]["description"] == "Visitors who converted."
    validator(document, "Stats").validate(body)


def test_the_descriptions_facts_are_filled_in(document):
    exact = document["components"]["schemas"]["StatsTotals"]["properties"]["visitors_exact"]
    assert "{" not in exact["description"]
    assert report_schemas.FACTS["exact_limit"] in exact["description"]


@pytest.mark.parametrize("endpoint", [e for e in REPORT_PATHS if e != "live"])
def test_each_report_documents_the_query_parameters_its_parser_reads(document, endpoint):
    from datalook.analytics import query

    def resolved(parameter: dict) -> dict:
        """A parameter, its $ref followed."""
        if "$ref" in parameter:
            return document["components"]["parameters"][parameter["$ref"].rsplit("/", 1)[1]]
        return parameter

    operation = document["paths"][REPORT_PATHS[endpoint]]["get"]
    documented = [p["name"] for p in map(resolved, operation["parameters"]) if p["in"] == "query"]
    read = [name for group in query.REPORTS[endpoint] for name in query.GROUP_PARAMETERS[group]]
    assert documented == read
