"""The server-events docs page and /openapi.json: every public fact on the page, examples
that really work, and error codes, statuses and headers that cannot drift from the code."""

from __future__ import annotations

import ast
import html
import json
import re
import sys
import types
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy.exc import OperationalError

import datalook
from datalook import openapi
from datalook.ingest import storage
from datalook.snippets import render as snippets

jsonschema = pytest.importorskip("jsonschema")
openapi_spec_validator = pytest.importorskip("openapi_spec_validator")

PACKAGE = Path(datalook.__file__).parent

# The example of the product's public server-events page, byte for byte.
PRODUCT_EXAMPLE = """{
  "event_name": "success",
  "name": "paid-customer",
  "page_path": "/checkout/success",
  "success_value": 9.99,
  "success_user_id": "user_42",
  "properties": {
    "plan": "starter"
  }
}"""

# Every fact of the product's public page, in the words a reader searches for.
PRODUCT_FACTS = [
    "POST /event",
    "Authorization: Bearer dl_live_<key_id>_<secret>",
    "Content-Type: application/json",
    "dl_live_<key_id>_<secret>",
    "pageview",
    "click",
    "success",
    "custom",
    "event_name",
    "page_path",
    "name",
    "success_user_id",
    "success_value",
    "properties",
    "204 No Content",
    "401",
    "invalid or revoked",
    "500 requests per 10 seconds",
    "sliding window",
    "429",
    "Retry-After",
    "Email us",
    "email",
    "phone",
    "password",
    "ssn",
    "10 active keys",
    "shown once",
    "secrets manager",
    "Send events from your backend",
    "Create key",
    "Production server",
    "Revoke",
    "Rotate",
    "ad blockers",
    "payment was captured",
    "journeys and funnels",
    "one visitor",
    "flat object",
    "revenue",
    "pre-filled",
    "12 runtimes",
    "curl",
    "Node fetch",
    "Python requests",
    "Ruby Net::HTTP",
    "PHP cURL",
    "Go net/http",
    "Java HttpClient",
    "C# HttpClient",
    "Rust reqwest",
    "Elixir Req",
    "Next.js Server Action",
]

# What the project documents beyond the product's page.
EXTRA_FACTS = [
    "event_id",
    "timestamp",
    "DataLook-Duplicate: true",
    "DataLook-Stripped-Keys",
    "?validate=1",
    "POST /events",
    "1 to 500 events",
    "1 MiB",
    "64 KiB",
    "query string and fragment",
    "2048 characters",
    "1 to 100 characters",
    "1 to 256 characters",
    "at most 50 keys",
    "1 to 128 characters",
    "at most 1024 characters",
    "6 decimal places",
    "1e12",
    "1 hour in the future",
    "7 days in the past",
    "passwd",
    "camelCase",
    "percent-encoded",
    "rounded up",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "WWW-Authenticate: Bearer",
    "checksum",
    "grace period",
    "in 7 days",
    "413",
    "415",
    "503",
    "/openapi.json",
    "PowerShell",
]

REPORTS = (
    "stats",
    "breakdown",
    "funnel",
    "funnels/{funnel_id}",
    "journeys",
    "journeys/next",
    "live",
)
EVENT_STATUSES = {"200", "204", "400", "401", "413", "415", "429", "503"}
BATCH_STATUSES = EVENT_STATUSES - {"204"}
RATE_HEADERS = {
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit-Policy",
    "RateLimit",
}


# --- helpers ---------------------------------------------------------------------------------


def page(client) -> str:
    """GET the docs page and return its HTML."""
    response = client.get("/docs/server-events")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    return response.get_data(as_text=True)


def visible_text(markup: str) -> str:
    """The page's text as a reader sees it: tags removed, entities decoded, spaces collapsed."""
    text = re.sub(r"<[^>]+>", " ", markup)
    return re.sub(r"\s+", " ", html.unescape(text))


def code_block(markup: str, block_id: str) -> str:
    """The exact text of the <code> element with this id."""
    match = re.search(rf'<code id="{block_id}">(.*?)</code>', markup, re.DOTALL)
    assert match, f"no code block #{block_id}"
    return html.unescape(match.group(1))


def create_token(app, limit: str | None = None) -> str:
    """Create a user, a site and a key through the CLI; return the token."""
    runner = app.test_cli_runner()
    steps = [
        ["users", "create", "docs@example.com", "--password", "correct horse battery"],
        ["sites", "create", "docs.example.com", "--owner", "docs@example.com"],
    ]
    for args in steps:
        assert runner.invoke(args=args).exit_code == 0
    result = runner.invoke(args=["keys", "create", "--site", "docs.example.com", "--name", "Docs"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    if limit is not None:
        key_id = token.split("_")[2]
        assert runner.invoke(args=["keys", "set-limit", key_id, limit]).exit_code == 0
    return token


@pytest.fixture
def token(app) -> str:
    """A working API key."""
    return create_token(app)


def auth(token: str) -> dict:
    """The headers the docs tell a backend to send."""
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def spec(client) -> dict:
    """GET /openapi.json."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return response.get_json()


def resolve(document: dict, node: dict) -> dict:
    """Follow local $refs until a real node is reached."""
    while "$ref" in node:
        target = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_validator(document: dict, name: str):
    """A JSON Schema 2020-12 validator of one component schema of the document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def _constant(node: ast.AST | None) -> str | None:
    """The value of a string literal node, else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return None


def codes_in_code() -> tuple[set[str], set[str]]:
    """Every error code the package can send: (envelope codes, per-field and warning codes).

    Read from the source: ApiError/error_response/AuthFailure calls, the default codes of
    errors.py, problems.add(field, code, message) calls and {"code": "..."} literals.
    """
    envelope: set[str] = set()
    items: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "openapi":  # the description itself, not a source of codes
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
                args = node.args
                if name in ("ApiError", "error_response") and len(args) >= 2:
                    envelope.add(_constant(args[1]))
                elif name == "AuthFailure" and args:
                    envelope.add(_constant(args[0]))
                elif name == "add" and len(args) == 3 and path.parent.name == "ingest":
                    items.add(_constant(args[1]))
            elif isinstance(node, ast.Assign) and any(
                getattr(target, "id", None) == "DEFAULT_CODES" for target in node.targets
            ):
                envelope.update(_constant(value) for value in node.value.values)
            elif isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if _constant(key) == "code" and _constant(value) is not None:
                        items.add(_constant(value))
    envelope.discard(None)
    items.discard(None)
    return envelope, items


# --- the page --------------------------------------------------------------------------------


def test_page_is_wrapped_in_docs_and_needs_nothing_inline_or_external(client):
    markup = page(client)
    assert '<div class="docs">' in markup
    assert "<style" not in markup
    assert not re.search(r"\sstyle=", markup)
    assert not re.search(r"\son[a-z]+=", markup), "inline event handlers break the CSP"
    for script in re.findall(r"<script\\b[^>]*>", markup):
        assert " src=" in script, f"inline script: {script}"
    for url in re.findall(r'\s(?:src|href)="([^"]+)"', markup):
        assert not url.startswith(("http:", "https:", "//")), f"external resource: {url}"


@pytest.mark.parametrize("fact", PRODUCT_FACTS)
def test_every_fact_of_the_product_page_is_on_the_docs_page(client, fact):
    assert fact.lower() in visible_text(page(client)).lower()


@pytest.mark.parametrize("fact", EXTRA_FACTS)
def test_what_goes_beyond_the_product_page_is_documented(client, fact):
    assert fact.lower() in visible_text(page(client)).lower()


def test_the_code_samples_of_every_runtime_are_on_the_page(client):
    markup = page(client)
    assert len(snippets.RUNTIMES) == 12
    assert markup.count('role="tab"') == 12
    for runtime in snippets.RUNTIMES:
        assert html.escape(runtime.label) in markup
        assert f'data-runtime="{runtime.key}"' in markup
    assert snippets.PLACEHOLDER in markup
    assert "snippets.js" in markup


def test_the_example_is_the_product_example(client):
    assert code_block(page(client), "example-event") == PRODUCT_EXAMPLE


def test_the_endpoint_shown_is_this_server(client):
    assert "POST http://localhost/event" in visible_text(page(client))


# --- the examples really work ----------------------------------------------------------------


def test_the_product_example_sent_verbatim_is_stored(client, token):
    response = client.post("/event", data=PRODUCT_EXAMPLE, headers=auth(token))
    assert response.status_code == 204, response.get_data(as_text=True)
    assert response.get_data() == b""


def test_the_example_copied_from_the_page_is_stored(client, token):
    body = code_block(page(client), "example-event")
    response = client.post("/event", data=body, headers=auth(token))
    assert response.status_code == 204, response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("block", "path", "status"), [("curl-event", "/event", 204), ("curl-batch", "/events", 200)]
)
def test_the_curl_examples_work(client, token, block, path, status):
    command = code_block(page(client), block)
    assert command.startswith(f"curl -X POST http://localhost{path} \\\n")
    assert '-H "Authorization: Bearer $DATALOOK_API_KEY"' in command
    assert '-H "Content-Type: application/json"' in command
    body = re.search(r"-d '([^']*)'", command).group(1)
    response = client.post(path, data=body, headers=auth(token))
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 200:
        assert response.get_json()["errors"] == []


def test_the_python_batch_example_runs_as_shown(client, token, monkeypatch, capsys):
    source = code_block(page(client), "python-batch")
    calls = []

    class Answer:
        def __init__(self, response):
            self.response = response

        def raise_for_status(self):
            assert self.response.status_code < 400, self.response.get_data(as_text=True)

        def json(self):
            return self.response.get_json()

    def post(url, headers, json, timeout):
        calls.append(url)
        return Answer(client.post(urlsplit(url).path, headers=headers, json=json))

    monkeypatch.setitem(sys.modules, "requests", types.SimpleNamespace(post=post))
    monkeypatch.setenv("DATALOOK_API_KEY", token)
    code = compile(source, "python-batch", "exec")
    exec(code, {"__name__": "__main__"})  # noqa: S102 - the docs' own example, run as shown
    exec(code, {"__name__": "__main__"})  # noqa: S102 - again: the event_id is a duplicate
    assert calls == ["http://localhost/events"] * 2
    assert capsys.readouterr().out.splitlines() == [
        "stored 2, duplicates 0",
        "stored 1, duplicates 1",
    ]


# --- /openapi.json ---------------------------------------------------------------------------


def test_openapi_document_is_valid_openapi_3_1(client):
    document = spec(client)
    assert document["openapi"].startswith("3.1.")
    openapi_spec_validator.validate(document)
    assert document["servers"] == [{"url": "http://localhost"}]
    assert set(document["paths"]) == {
        "/event",
        "/events",
        "/collect",
        "/healthz",
        "/readyz",
        *(f"/sites/{{site_id}}/{report}.json" for report in REPORTS),
        "/sites/{site_id}/reports/{report}.csv",
    }
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert scheme["scheme"] == "bearer"
    assert scheme["bearerFormat"] == "dl_live_<key_id>_<secret>"


def test_openapi_lists_every_status_and_its_headers(client):
    document = spec(client)
    event = document["paths"]["/event"]["post"]
    batch = document["paths"]["/events"]["post"]
    assert set(event["responses"]) == EVENT_STATUSES
    assert set(batch["responses"]) == BATCH_STATUSES

    def headers(operation, status):
        return set(resolve(document, operation["responses"][status]).get("headers", {}))

    assert headers(event, "204") >= {"DataLook-Duplicate", "DataLook-Stripped-Keys"} | RATE_HEADERS
    assert headers(event, "401") >= {"WWW-Authenticate"}
    assert headers(event, "429") >= {"Retry-After"} | RATE_HEADERS
    assert headers(event, "503") >= {"Retry-After"}
    assert [p["name"] for p in event["parameters"]] == ["validate"]
    for name in headers(event, "204") | headers(event, "401") | headers(event, "429"):
        assert name in document["components"]["headers"]


def test_openapi_request_schema_is_strict_and_complete(client):
    event = spec(client)["components"]["schemas"]["Event"]
    assert event["additionalProperties"] is False
    assert event["required"] == ["event_name", "page_path"]
    assert set(event["properties"]) == {
        "event_name",
        "page_path",
        "name",
        "success_user_id",
        "success_value",
        "properties",
        "event_id",
        "timestamp",
        "context",
    }
    assert event["properties"]["event_name"]["enum"] == ["pageview", "click", "success", "custom"]
    assert event["then"]["required"] == ["name"]


VALID_EVENTS = [
    json.loads(PRODUCT_EXAMPLE),
    {"event_name": "pageview", "page_path": "/"},
    {"event_name": "click", "page_path": "/a?b=c#d", "name": None, "success_value": None},
    {"event_name": "success", "name": "x", "page_path": "/", "success_user_id": 42},
    {"event_name": "custom", "page_path": "/", "properties": {"a": 1.5, "b": True, "c": ""}},
    {"event_name": "success", "name": "n", "page_path": "/", "success_value": -1e12},
    {"event_name": "click", "page_path": "/", "event_id": "3f0c9a52-6f7e-4e55-9d0e-1c2b3a4d5e6f"},
    {"event_name": "click", "page_path": "/", "timestamp": None},
    {
        "event_name": "pageview",
        "page_path": "/",
        "context": {
            "ip": "2001:db8::1",
            "user_agent": "Mozilla/5.0",
            "referrer": "https://www.google.com/?q=x",
            "utm": {"source": "newsletter", "medium": None},
        },
    },
    {"event_name": "pageview", "page_path": "/", "context": None},
]

INVALID_EVENTS = [
    pytest.param([], id="not-an-object"),
    pytest.param({"page_path": "/"}, id="event_name-missing"),
    pytest.param({"event_name": "click"}, id="page_path-missing"),
    pytest.param({"event_name": "purchase", "page_path": "/"}, id="event_name-unknown"),
    pytest.param({"event_name": "Click", "page_path": "/"}, id="event_name-case"),
    pytest.param({"event_name": "success", "page_path": "/"}, id="success-without-name"),
    pytest.param({"event_name": "success", "page_path": "/", "name": None}, id="name-null"),
    pytest.param({"event_name": "success", "page_path": "/", "name": ""}, id="name-empty"),
    pytest.param({"event_name": "click", "page_path": "/", "name": "n" * 101}, id="name-long"),
    pytest.param({"event_name": "click", "page_path": "checkout"}, id="page_path-relative"),
    pytest.param({"event_name": "click", "page_path": "/" * 2049}, id="page_path-long"),
    pytest.param({"event_name": "click", "page_path": "/a\tb"}, id="page_path-control"),
    pytest.param({"event_name": "click", "page_path": "/", "sucess_value": 1}, id="unknown-field"),
    pytest.param(
        {"event_name": "click", "page_path": "/", "success_value": "9.99"}, id="value-str"
    ),
    pytest.param({"event_name": "click", "page_path": "/", "success_value": True}, id="value-bool"),
    pytest.param({"event_name": "click", "page_path": "/", "success_value": 2e12}, id="value-big"),
    pytest.param({"event_name": "click", "page_path": "/", "success_user_id": ""}, id="user-empty"),
    pytest.param(
        {"event_name": "click", "page_path": "/", "success_user_id": "u" * 257}, id="user-long"
    ),
    pytest.param(
        {"event_name": "click", "page_path": "/", "success_user_id": 1.5}, id="user-float"
    ),
    pytest.param({"event_name": "click", "page_path": "/", "properties": []}, id="properties-list"),
    pytest.param(
        {"event_name": "click", "page_path": "/", "properties": {"a": {"b": 1}}}, id="nested"
    ),
    pytest.param({"event_name": "click", "page_path": "/", "properties": {"a": [1]}}, id="array"),
    pytest.param({"event_name": "click", "page_path": "/", "properties": {"a": None}}, id="null"),
    pytest.param({"event_name": "click", "page_path": "/", "properties": {"": 1}}, id="empty-key"),
    pytest.param(
        {"event_name": "click", "page_path": "/", "properties": {"k" * 129: 1}}, id="long-key"
    ),
    pytest.param(
        {"event_name": "click", "page_path": "/", "properties": {"a": "v" * 1025}}, id="long-value"
    ),
    pytest.param(
        {"event_name": "click", "page_path": "/", "properties": {str(i): i for i in range(51)}},
        id="too-many-properties",
    ),
    pytest.param({"event_name": "click", "page_path": "/", "event_id": "a b"}, id="event_id-space"),
    pytest.param(
        {"event_name": "click", "page_path": "/", "event_id": "e" * 65}, id="event_id-long"
    ),
    pytest.param(
        {"event_name": "click", "page_path": "/", "timestamp": 1700000000}, id="ts-number"
    ),
    pytest.param({"event_name": "click", "page_path": "/", "context": []}, id="context-list"),
    pytest.param(
        {"event_name": "click", "page_path": "/", "context": {"ua": "x"}}, id="context-unknown"
    ),
    pytest.param(
        {"event_name": "click", "page_path": "/", "context": {"referrer": "google.com"}},
        id="context-referrer-relative",
    ),
    pytest.param(
        {"event_name": "click", "page_path": "/", "context": {"utm": {"source": 1}}},
        id="context-utm-number",
    ),
    pytest.param(
        {"event_name": "click", "page_path": "/", "referrer": "https://a.example/"},
        id="browser-field-on-event",
    ),
]


@pytest.mark.parametrize("event", VALID_EVENTS)
def test_valid_events_pass_both_the_schema_and_the_api(client, token, event):
    schema_validator(spec(client), "Event").validate(event)
    response = client.post("/event?validate=1", json=event, headers=auth(token))
    assert response.status_code == 200, response.get_data(as_text=True)


@pytest.mark.parametrize("event", INVALID_EVENTS)
def test_invalid_events_fail_both_the_schema_and_the_api(client, token, event):
    assert not schema_validator(spec(client), "Event").is_valid(event)
    response = client.post("/event?validate=1", json=event, headers=auth(token))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_request"


def test_a_batch_of_the_example_passes_the_batch_schema(client):
    validator = schema_validator(spec(client), "EventBatch")
    validator.validate({"events": [json.loads(PRODUCT_EXAMPLE)]})
    assert not validator.is_valid({"events": []})
    assert not validator.is_valid({"events": [{"event_name": "click", "page_path": "/"}] * 501})
    assert not validator.is_valid({"events": [], "extra": 1})


# --- the documented answers are the real answers ---------------------------------------------


def _answers(app, client, monkeypatch):
    """Provoke every status of POST /event; yield (status, response)."""
    token = create_token(app)
    example = json.loads(PRODUCT_EXAMPLE)
    yield "200", client.post("/event?validate=1", json=example, headers=auth(token))
    stripped = {**example, "event_id": "e-1", "properties": {"user_email": "a@b.c"}}
    yield "204", client.post("/event", json=stripped, headers=auth(token))
    yield "204", client.post("/event", json=stripped, headers=auth(token))
    yield "400", client.post("/event", json={"event_name": "x"}, headers=auth(token))
    yield "400", client.post("/event", data="{", headers=auth(token))
    yield "401", client.post("/event", json=example)
    big = json.dumps({**example, "page_path": "/" + "a" * 70_000})
    yield "413", client.post("/event", data=big, headers=auth(token))
    yield "415", client.post("/event", data="{}", headers={"Authorization": f"Bearer {token}"})

    def unavailable(*args, **kwargs):
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    with monkeypatch.context() as patch:
        patch.setattr(storage, "store", unavailable)
        yield "503", client.post("/event", json=example, headers=auth(token))
    limited = create_token_for_limit(app)
    client.post("/event", json=example, headers=auth(limited))
    yield "429", client.post("/event", json=example, headers=auth(limited))


def create_token_for_limit(app) -> str:
    """A second key of the docs site, limited to one request per 10 seconds."""
    runner = app.test_cli_runner()
    result = runner.invoke(args=["keys", "create", "--site", "docs.example.com", "--name", "One"])
    token = result.stdout.strip()
    assert runner.invoke(args=["keys", "set-limit", token.split("_")[2], "1 per 10 seconds"])
    return token


def test_every_real_answer_matches_its_documented_schema_and_headers(app, client, monkeypatch):
    document = spec(client)
    operation = document["paths"]["/event"]["post"]
    seen = set()
    for status, response in _answers(app, client, monkeypatch):
        assert str(response.status_code) == status, response.get_data(as_text=True)
        seen.add(status)
        documented = resolve(document, operation["responses"][status])
        for name in documented.get("headers", {}):
            if name in ("DataLook-Duplicate", "DataLook-Stripped-Keys"):
                continue  # only when they apply, checked below
            assert name in response.headers, f"{status} lacks {name}"
        content = documented.get("content")
        if content is None:
            assert response.get_data() == b""
            continue
        schema = content["application/json"]["schema"]
        validator = jsonschema.Draft202012Validator(
            {**schema, "components": document["components"]}
        )
        validator.validate(response.get_json())
    assert seen == EVENT_STATUSES


def test_success_headers_are_the_documented_ones(client, token):
    example = {**json.loads(PRODUCT_EXAMPLE), "event_id": "order-1"}
    example["properties"] = {"plan": "starter", "user_email": "a@b.c", "ssn Last4": "1234"}
    first = client.post("/event", json=example, headers=auth(token))
    assert first.status_code == 204
    stripped = first.headers["DataLook-Stripped-Keys"].split(", ")
    assert sorted(stripped) == ["ssn%20Last4", "user_email"]
    assert "DataLook-Duplicate" not in first.headers
    again = client.post("/event", json=example, headers=auth(token))
    assert again.status_code == 204
    assert again.headers["DataLook-Duplicate"] == "true"
    assert again.headers["X-RateLimit-Limit"] == "500"
    assert again.headers["RateLimit-Policy"] == '"default";q=500;w=10'


# --- error codes cannot drift ----------------------------------------------------------------


def test_the_code_scan_finds_the_codes_it_should():
    envelope, items = codes_in_code()
    assert {"invalid_json", "invalid_request", "missing_token", "rate_limited"} <= envelope
    assert {"unavailable", "payload_too_large", "revoked_token", "not_found"} <= envelope
    assert {"required", "unknown_field", "too_old", "invalid_length", "pii_stripped"} <= items


def test_every_error_code_of_the_code_is_in_the_openapi_enums_and_no_other(client):
    schemas = spec(client)["components"]["schemas"]
    envelope, items = codes_in_code()
    assert set(schemas["ErrorCode"]["enum"]) == envelope
    assert set(schemas["FieldErrorCode"]["enum"]) | set(schemas["WarningCode"]["enum"]) == items
    assert set(openapi.ERROR_CODES) == envelope


def test_every_error_code_of_the_code_is_on_the_docs_page(client):
    # The browser endpoint's own codes are documented on the browser SDK's page.
    markup = page(client) + client.get("/docs/browser-sdk").get_data(as_text=True)
    envelope, items = codes_in_code()
    missing = [code for code in sorted(envelope | items) if f"<code>{code}</code>" not in markup]
    assert missing == []
