"""POST /event: the request and its answers, every field rule, auth, dedup, 503, validate mode."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from sqlalchemy import select

from datalook.extensions import db
from datalook.keys import apikeys, tokens
from datalook.models import ApiKey, SuccessRule, utcnow
from tests import raw_figures as stats
from tests.conftest import _make_app, sign_up
from tests.factories import (
    bearer,
    create_token,
    event_count,
    second_key,
    stored_events,
)

# The example of the server-events docs, exactly as users copy it.
DOCS_EXAMPLE = """{
  "event_name": "success",
  "name": "paid-customer",
  "page_path": "/checkout/success",
  "success_value": 9.99,
  "success_user_id": "user_42",
  "properties": {
    "plan": "starter"
  }
}"""

BASE = {"event_name": "custom", "page_path": "/p"}
REMOVE = object()
MAX_BODY = 64 * 1024


@pytest.fixture
def made(app):
    """A user, a site and a key (its limit raised), with the token."""
    return create_token(app)


def post(client, body, token=None, content_type="application/json", query="", headers=None):
    """POST /event; `body` is a dict/list (sent as JSON), str or bytes (sent as is)."""
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers.update(bearer(token))
    return client.post(f"/event{query}", data=body, headers=all_headers, content_type=content_type)


def event(**changes) -> dict:
    """The base event with fields changed (REMOVE deletes one)."""
    body = dict(BASE)
    for key, value in changes.items():
        if value is REMOVE:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def assert_envelope(response, status: int, code: str | None = None) -> dict:
    """Check the JSON error envelope and return its inner object."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    for item in error.get("errors", []):
        assert set(item) >= {"field", "code", "message"}
    if code is not None:
        assert error["code"] == code
    return error


def assert_stored_204(response) -> None:
    """A 204: no body, no content type."""
    assert response.status_code == 204, response.get_data(as_text=True)[:500]
    assert response.data == b""
    assert "Content-Type" not in response.headers


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z."""
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


# --- the request ------------------------------------------------------------------------------


def test_docs_example_verbatim_is_stored(app, client, made):
    response = client.post(
        "/event",
        data=DOCS_EXAMPLE,
        headers={
            "Authorization": f"Bearer {made.token}",
            "Content-Type": "application/json",
        },
    )
    assert_stored_204(response)
    (stored,) = stored_events(app, made.site_id)
    assert stored["event_name"] == "success"
    assert stored["name"] == "paid-customer"
    assert stored["page_path"] == "/checkout/success"
    assert stored["success_value"] == 9.99
    assert stored["success_user_id"] == "user_42"
    assert stored["properties"] == {"plan": "starter"}
    assert stored["stripped_keys"] == []
    assert stored["key_id"] == made.key_id


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "Application/JSON; charset=utf-8",
    ],
)
def test_json_content_types_are_accepted(client, made, content_type):
    assert_stored_204(post(client, BASE, made.token, content_type=content_type))


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "text/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/xml",
    ],
)
def test_other_content_types_are_refused_with_415(app, client, made, content_type):
    response = post(client, BASE, made.token, content_type=content_type)
    assert_envelope(response, 415)
    assert event_count(app) == 0


def _padded(size: int) -> bytes:
    """A valid event padded with trailing spaces to exactly `size` bytes."""
    raw = json.dumps(BASE).encode()
    return raw + b" " * (size - len(raw))


def test_body_of_exactly_64_kib_is_accepted(client, made):
    assert_stored_204(post(client, _padded(MAX_BODY), made.token))


@pytest.mark.parametrize("size", [MAX_BODY + 1, 10 * MAX_BODY])
def test_body_over_64_kib_is_refused_with_413(app, client, made, size):
    response = post(client, _padded(size), made.token)
    assert_envelope(response, 413)
    assert event_count(app) == 0


def test_chunked_body_over_64_kib_is_refused_while_streaming(app, client, made):
    """No Content-Length: the limit must hold while the body streams in."""
    response = client.post(
        "/event",
        input_stream=io.BytesIO(_padded(2 * MAX_BODY)),
        headers={**bearer(made.token), "Transfer-Encoding": "chunked"},
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},  # what gunicorn sets
    )
    assert_envelope(response, 413)
    assert event_count(app) == 0


def test_chunked_body_within_64_kib_is_accepted(client, made):
    response = client.post(
        "/event",
        input_stream=io.BytesIO(_padded(MAX_BODY)),
        headers={**bearer(made.token), "Transfer-Encoding": "chunked"},
        content_type="application/json",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_stored_204(response)


@pytest.mark.slow
def test_chunked_body_over_64_kib_is_refused_by_the_real_server(live_server):
    token = live_server.new_token()

    def chunks():
        yield json.dumps(BASE).encode()
        for _ in range(20):
            yield b" " * 8192  # 160 KiB in all, sent without a Content-Length

    try:
        response = requests.post(
            live_server.event_url,
            data=chunks(),
            headers={**bearer(token), "Content-Type": "application/json"},
            timeout=10,
        )
    except requests.ConnectionError:
        pass  # refused before the body was read whole and the connection closed: also fine
    else:
        assert response.status_code == 413, response.text[:300]
        assert response.json()["error"]["code"]
    assert live_server.stored_events() == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"\n",
        b"{",
        b'{"event_name": "custom",}',
        b"{'event_name': 'custom'}",
        b'{"event_name": "custom"} trailing',
        b"NaN",
        b'{"success_value": NaN}',
        b"\xff\xfe{}",
        b"undefined",
    ],
)
def test_malformed_json_and_empty_body_are_invalid_json(app, client, made, body):
    assert_envelope(post(client, body, made.token), 400, "invalid_json")
    assert event_count(app) == 0


@pytest.mark.parametrize("body", ["null", "[]", json.dumps([BASE]), '"pageview"', "42", "true"])
def test_body_that_is_not_an_object_is_refused(app, client, made, body):
    error = assert_envelope(post(client, body, made.token), 400)
    assert [item["code"] for item in error["errors"]] == ["not_an_object"]
    assert event_count(app) == 0


# --- the field rules ----------------------------------------------------------------------------


@dataclass(frozen=True)
class At:
    """A timestamp relative to when the case runs (never to when the module was imported):
    `now + offset`, written by `write`."""

    offset: timedelta
    write: Callable[[datetime], object] = iso

    def at(self, now: datetime) -> object:
        """The value for a case running at `now`."""
        return self.write(now + self.offset)


def resolved(changes: dict, now: datetime) -> dict:
    """The case's values with every `At` turned into a value at `now`."""
    return {
        name: value.at(now) if isinstance(value, At) else value for name, value in changes.items()
    }


def local_offset(moment: datetime) -> str:
    """`moment` (naive UTC) written in the machine's local offset."""
    return moment.replace(tzinfo=UTC).astimezone(datetime.now().astimezone().tzinfo).isoformat()


# (changes to the base event, expected stored fields) for events that must be accepted.
VALID = [
    pytest.param({"event_name": "pageview"}, {"event_name": "pageview"}, id="pageview"),
    pytest.param({"event_name": "click"}, {"event_name": "click"}, id="click"),
    pytest.param({"event_name": "custom"}, {"event_name": "custom"}, id="custom"),
    pytest.param(
        {"event_name": "success", "name": "paid"},
        {"event_name": "success", "name": "paid"},
        id="success-with-name",
    ),
    pytest.param({"page_path": "/"}, {"page_path": "/"}, id="path-root"),
    pytest.param({"page_path": "/a/b/c"}, {"page_path": "/a/b/c"}, id="path-deep"),
    pytest.param({"page_path": "/café/ü"}, {"page_path": "/café/ü"}, id="path-unicode"),
    pytest.param({"page_path": "/a?email=x@y.z"}, {"page_path": "/a"}, id="query-dropped"),
    pytest.param({"page_path": "/a#token=1"}, {"page_path": "/a"}, id="fragment-dropped"),
    pytest.param({"page_path": "/a?q=1#f"}, {"page_path": "/a"}, id="both-dropped"),
    pytest.param({"page_path": "/?q=1"}, {"page_path": "/"}, id="root-query-dropped"),
    pytest.param({"page_path": "/" + "a" * 2047}, {"page_path": "/" + "a" * 2047}, id="path-2048"),
    pytest.param({"name": "x"}, {"name": "x"}, id="name-optional-on-custom"),
    pytest.param({"event_name": "success", "name": "n" * 100}, {"name": "n" * 100}, id="name-100"),
    pytest.param({"success_user_id": "u"}, {"success_user_id": "u"}, id="user-1-char"),
    pytest.param({"success_user_id": "u" * 256}, {"success_user_id": "u" * 256}, id="user-256"),
    pytest.param({"success_user_id": 42}, {"success_user_id": "42"}, id="user-int"),
    pytest.param({"success_user_id": 0}, {"success_user_id": "0"}, id="user-zero"),
    pytest.param({"success_user_id": -7}, {"success_user_id": "-7"}, id="user-negative"),
    pytest.param(
        {"success_user_id": 9007199254740993},
        {"success_user_id": "9007199254740993"},
        id="user-int-beyond-double",
    ),
    pytest.param({"success_user_id": None}, {"success_user_id": None}, id="user-null-is-absent"),
    pytest.param({"success_value": 9.99}, {"success_value": 9.99}, id="value-float"),
    pytest.param({"success_value": 0}, {"success_value": 0}, id="value-zero"),
    pytest.param({"success_value": -12.5}, {"success_value": -12.5}, id="value-negative"),
    pytest.param({"success_value": 1e12}, {"success_value": 10**12}, id="value-max"),
    pytest.param({"success_value": -(10**12)}, {"success_value": -(10**12)}, id="value-min"),
    pytest.param({"success_value": None}, {"success_value": None}, id="value-null-is-absent"),
    pytest.param({"properties": {}}, {"properties": {}}, id="props-empty"),
    pytest.param(
        {"properties": {"s": "x", "i": 3, "f": 1.5, "t": True, "n": False}},
        {"properties": {"s": "x", "i": 3, "f": 1.5, "t": True, "n": False}},
        id="props-scalar-values",
    ),
    pytest.param(
        {"properties": {f"k{i}": i for i in range(50)}},
        {"properties": {f"k{i}": i for i in range(50)}},
        id="props-50-keys",
    ),
    pytest.param(
        {"properties": {"k" * 128: "v"}}, {"properties": {"k" * 128: "v"}}, id="props-key-128"
    ),
    pytest.param(
        {"properties": {"k": "v" * 1024}}, {"properties": {"k": "v" * 1024}}, id="props-str-1024"
    ),
    pytest.param({"properties": None}, {"properties": {}}, id="props-null-is-absent"),
    pytest.param({"event_id": "a"}, {"event_id": "a"}, id="event-id-1"),
    pytest.param({"event_id": "A-z_09" * 10 + "abcd"}, {}, id="event-id-64"),
    pytest.param(
        {"event_id": "3f2b8c1e-0d4a-4e8b-9f6a-2c7d1e5b9a00"},
        {"event_id": "3f2b8c1e-0d4a-4e8b-9f6a-2c7d1e5b9a00"},
        id="event-id-uuid",
    ),
    pytest.param(
        {"timestamp": At(timedelta(hours=-1))},
        {"timestamp": At(timedelta(hours=-1))},
        id="ts-z",
    ),
    pytest.param(
        {"timestamp": At(timedelta(hours=-3), local_offset)},
        {"timestamp": At(timedelta(hours=-3))},
        id="ts-local-offset",
    ),
    pytest.param(
        {"timestamp": At(timedelta(hours=2), lambda m: m.strftime("%Y-%m-%dT%H:%M:%S.%f+02:00"))},
        {"timestamp": At(timedelta(0))},
        id="ts-plus-0200-converted-to-utc",
    ),
    pytest.param({"timestamp": At(timedelta(minutes=50))}, {}, id="ts-50-min-ahead"),
    pytest.param({"timestamp": At(-timedelta(days=6, hours=23))}, {}, id="ts-6d23h-ago"),
]


@pytest.mark.parametrize(("changes", "expected"), VALID)
def test_valid_fields_are_stored_normalised(app, client, made, changes, expected):
    now = utcnow()
    changes, expected = resolved(changes, now), resolved(expected, now)
    assert_stored_204(post(client, event(**changes), made.token))
    (stored,) = stored_events(app, made.site_id)
    for name, value in expected.items():
        assert stored[name] == value, name


# (changes to the base event, the field named, its error code) for events that must be refused.
INVALID = [
    pytest.param({"event_name": REMOVE}, "event_name", "required", id="event-name-missing"),
    pytest.param({"event_name": "Pageview"}, "event_name", "invalid_choice", id="event-name-case"),
    pytest.param({"event_name": "page view"}, "event_name", "invalid_choice", id="event-name-typo"),
    pytest.param({"event_name": ""}, "event_name", "invalid_choice", id="event-name-empty"),
    pytest.param({"event_name": " click"}, "event_name", "invalid_choice", id="event-name-space"),
    pytest.param({"event_name": 1}, "event_name", "not_a_string", id="event-name-number"),
    pytest.param({"event_name": None}, "event_name", "not_a_string", id="event-name-null"),
    pytest.param({"page_path": REMOVE}, "page_path", "required", id="path-missing"),
    pytest.param({"page_path": ""}, "page_path", "empty", id="path-empty"),
    pytest.param({"page_path": "a/b"}, "page_path", "invalid_path", id="path-relative"),
    pytest.param({"page_path": "?q=1"}, "page_path", "invalid_path", id="path-query-only"),
    pytest.param(
        {"page_path": "https://example.com/a"}, "page_path", "invalid_path", id="path-url"
    ),
    pytest.param({"page_path": "/" + "a" * 2048}, "page_path", "too_long", id="path-2049"),
    pytest.param({"page_path": "/a\nb"}, "page_path", "control_characters", id="path-newline"),
    pytest.param({"page_path": "/a\x00"}, "page_path", "control_characters", id="path-nul"),
    pytest.param({"page_path": "/a\tb"}, "page_path", "control_characters", id="path-tab"),
    pytest.param({"page_path": "/a\x1bb"}, "page_path", "control_characters", id="path-esc"),
    pytest.param({"page_path": "/a\x7f"}, "page_path", "control_characters", id="path-del"),
    pytest.param({"page_path": 5}, "page_path", "not_a_string", id="path-number"),
    pytest.param({"page_path": ["/a"]}, "page_path", "not_a_string", id="path-list"),
    pytest.param({"event_name": "success"}, "name", "required", id="success-without-name"),
    pytest.param(
        {"event_name": "success", "name": None}, "name", "required", id="success-name-null"
    ),
    pytest.param({"event_name": "success", "name": ""}, "name", "empty", id="success-name-empty"),
    pytest.param({"name": "n" * 101}, "name", "too_long", id="name-101"),
    pytest.param({"name": 7}, "name", "not_a_string", id="name-number"),
    pytest.param({"success_user_id": ""}, "success_user_id", "empty", id="user-empty"),
    pytest.param({"success_user_id": "u" * 257}, "success_user_id", "too_long", id="user-257"),
    pytest.param({"success_user_id": True}, "success_user_id", "invalid_type", id="user-bool"),
    pytest.param({"success_user_id": 1.5}, "success_user_id", "invalid_type", id="user-float"),
    pytest.param({"success_user_id": {}}, "success_user_id", "invalid_type", id="user-object"),
    pytest.param({"success_user_id": ["u"]}, "success_user_id", "invalid_type", id="user-list"),
    pytest.param({"success_value": "9.99"}, "success_value", "not_a_number", id="value-string"),
    pytest.param({"success_value": True}, "success_value", "not_a_number", id="value-bool"),
    pytest.param({"success_value": {}}, "success_value", "not_a_number", id="value-object"),
    pytest.param({"success_value": [1]}, "success_value", "not_a_number", id="value-list"),
    pytest.param(
        {"success_value": 1e12 + 1}, "success_value", "out_of_range", id="value-over-1e12"
    ),
    pytest.param(
        {"success_value": -(10**12) - 1}, "success_value", "out_of_range", id="value-under-1e12"
    ),
    pytest.param({"success_value": 1e300}, "success_value", "out_of_range", id="value-huge"),
    pytest.param({"properties": []}, "properties", "not_an_object", id="props-list"),
    pytest.param({"properties": "plan=x"}, "properties", "not_an_object", id="props-string"),
    pytest.param(
        {"properties": {f"k{i}": i for i in range(51)}},
        "properties",
        "too_many_keys",
        id="props-51-keys",
    ),
    pytest.param({"properties": {"": 1}}, "properties.", "invalid_key", id="props-empty-key"),
    pytest.param(
        {"properties": {"k" * 129: 1}},
        "properties." + "k" * 59 + "…",
        "invalid_key",
        id="props-key-129",
    ),
    pytest.param({"properties": {"k": "v" * 1025}}, "properties.k", "too_long", id="props-1025"),
    pytest.param(
        {"properties": {"plan": {"a": 1}}}, "properties.plan", "invalid_value", id="props-nested"
    ),
    pytest.param({"properties": {"plan": [1]}}, "properties.plan", "invalid_value", id="props-arr"),
    pytest.param(
        {"properties": {"plan": None}}, "properties.plan", "invalid_value", id="props-null"
    ),
    pytest.param({"event_id": ""}, "event_id", "invalid_format", id="event-id-empty"),
    pytest.param({"event_id": "a" * 65}, "event_id", "invalid_format", id="event-id-65"),
    pytest.param({"event_id": "a b"}, "event_id", "invalid_format", id="event-id-space"),
    pytest.param({"event_id": "a/b"}, "event_id", "invalid_format", id="event-id-slash"),
    pytest.param({"event_id": "a.b"}, "event_id", "invalid_format", id="event-id-dot"),
    pytest.param({"event_id": "é"}, "event_id", "invalid_format", id="event-id-unicode"),
    pytest.param({"event_id": 123}, "event_id", "invalid_format", id="event-id-number"),
    pytest.param(
        {"timestamp": At(timedelta(hours=-1), datetime.isoformat)},
        "timestamp",
        "missing_timezone",
        id="ts-naive",
    ),
    pytest.param(
        {"timestamp": At(timedelta(0), lambda m: m.date().isoformat())},
        "timestamp",
        "missing_timezone",
        id="ts-date-only",
    ),
    pytest.param(
        {"timestamp": At(timedelta(hours=1, minutes=5))},
        "timestamp",
        "too_far_in_future",
        id="ts-65-min-ahead",
    ),
    pytest.param(
        {"timestamp": At(-timedelta(days=7, minutes=5))},
        "timestamp",
        "too_old",
        id="ts-7d5m-ago",
    ),
    pytest.param({"timestamp": "yesterday"}, "timestamp", "invalid_timestamp", id="ts-words"),
    pytest.param({"timestamp": 1767225600}, "timestamp", "not_a_string", id="ts-epoch-number"),
]


@pytest.mark.parametrize(("changes", "field", "code"), INVALID)
def test_invalid_fields_are_refused_naming_the_field(app, client, made, changes, field, code):
    changes = resolved(changes, utcnow())
    error = assert_envelope(post(client, event(**changes), made.token), 400, "invalid_request")
    assert [(item["field"], item["code"]) for item in error["errors"]] == [(field, code)]
    assert event_count(app) == 0


def test_event_id_with_trailing_newline_is_refused(app, client, made):
    error = assert_envelope(post(client, event(event_id="abc\n"), made.token), 400)
    assert [item["field"] for item in error["errors"]] == ["event_id"]
    assert event_count(app) == 0


def test_page_path_with_c1_control_character_is_refused(app, client, made):
    error = assert_envelope(post(client, event(page_path="/a\x85b"), made.token), 400)
    assert [item["field"] for item in error["errors"]] == ["page_path"]


def test_big_integer_user_id_is_stored_as_decimal_string(app, client, made):
    body = '{"event_name": "custom", "page_path": "/p", "success_user_id": ' + "1" * 30 + "}"
    assert_stored_204(post(client, body, made.token))
    (stored,) = stored_events(app, made.site_id)
    assert stored["success_user_id"] == "1" * 30


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timestamp_at_the_edge_of_the_calendar_is_refused_not_500(client, made, stamp):
    error = assert_envelope(post(client, event(timestamp=stamp), made.token), 400)
    assert [item["field"] for item in error["errors"]] == ["timestamp"]


def test_default_timestamp_is_the_time_of_receipt(app, client, made):
    before = utcnow()
    assert_stored_204(post(client, BASE, made.token))
    after = utcnow()
    (stored,) = stored_events(app, made.site_id)
    moment = datetime.fromisoformat(stored["timestamp"].replace("Z", "+00:00"))
    assert before <= moment.replace(tzinfo=None) <= after


def test_three_values_of_9_99_sum_to_exactly_29_97(app, client, made):
    for _ in range(3):
        assert_stored_204(
            post(client, event(event_name="success", name="paid", success_value=9.99), made.token)
        )
    with app.app_context():
        revenue = stats.overview(made.site_id).revenue
    assert Decimal(str(revenue)) == Decimal("29.97")
    assert [e["success_value"] for e in stored_events(app, made.site_id)] == [9.99] * 3


@pytest.mark.parametrize(
    ("values", "total"),
    [
        ([0.1, 0.2], "0.3"),
        ([0.01] * 10, "0.1"),
        ([19.99, -19.99, 0.05], "0.05"),
        ([1e12, 1e12, 1e12], "3000000000000"),
    ],
)
def test_values_are_summed_exactly(app, client, made, values, total):
    for value in values:
        body = event(event_name="success", name="paid", success_value=value)
        assert_stored_204(post(client, body, made.token))
    with app.app_context():
        revenue = stats.overview(made.site_id).revenue
    assert Decimal(str(revenue)) == Decimal(total)


def test_revenue_of_many_maximal_values_does_not_overflow(app, client, made):
    for _ in range(10):
        body = event(event_name="success", name="paid", success_value=1e12)
        assert_stored_204(post(client, body, made.token))
    with app.app_context():
        revenue = stats.overview(made.site_id).revenue
    assert Decimal(str(revenue)) == Decimal("1e13")


@pytest.mark.parametrize(
    ("field", "typo", "suggestion"),
    [
        ("success_value", "succes_value", "success_value"),
        ("event_name", "eventname", "event_name"),
        ("page_path", "page-path", "page_path"),
        ("properties", "propertys", "properties"),
        ("timestamp", "timestmp", "timestamp"),
        ("success_user_id", "success_userid", "success_user_id"),
    ],
)
def test_unknown_field_is_named_with_a_suggestion(app, client, made, field, typo, suggestion):
    body = {**BASE, typo: 1}
    error = assert_envelope(post(client, body, made.token), 400)
    (problem,) = error["errors"]
    assert problem["field"] == typo
    assert problem["code"] == "unknown_field"
    assert f"did you mean {suggestion}?" in problem["message"]
    assert event_count(app) == 0


def test_a_repeated_typo_gets_the_same_suggestion_and_long_names_none(client, made):
    # Suggestions are remembered per name; an answer must not depend on what came before.
    messages = [
        assert_envelope(post(client, {**BASE, "eventname": 1}, made.token), 400)["errors"][0][
            "message"
        ]
        for _ in range(3)
    ]
    assert messages == ["unknown field 'eventname'; did you mean event_name?"] * 3
    long_name = "event_name" + "x" * 200  # beyond the remembered length, and close to nothing
    (problem,) = assert_envelope(post(client, {**BASE, long_name: 1}, made.token), 400)["errors"]
    assert problem["code"] == "unknown_field" and "did you mean" not in problem["message"]
    assert problem["field"] == long_name[:59] + "…"


def test_unknown_field_without_a_close_match_is_still_named(client, made):
    error = assert_envelope(post(client, {**BASE, "zzz": 1}, made.token), 400)
    assert [(p["field"], p["code"]) for p in error["errors"]] == [("zzz", "unknown_field")]


def test_all_problems_are_reported_at_once(app, client, made):
    body = {
        "event_name": "bogus",
        "page_path": "nope",
        "success_value": "12",
        "properties": {"plan": {"nested": True}},
    }
    error = assert_envelope(post(client, body, made.token), 400)
    assert sorted(item["field"] for item in error["errors"]) == [
        "event_name",
        "page_path",
        "properties.plan",
        "success_value",
    ]
    assert event_count(app) == 0


@pytest.mark.parametrize(
    "changes",
    [
        {"event_name": "x" * 10_000},
        {"page_path": "x" * 2000},
        {"timestamp": "x" * 10_000},
        {"x" * 10_000: 1},
        {"properties": {"p" * 10_000: 1}},
    ],
    ids=["event_name", "page_path", "timestamp", "unknown-field", "property-key"],
)
def test_bad_input_is_echoed_only_truncated(client, made, changes):
    response = post(client, event(**changes), made.token)
    assert_envelope(response, 400)
    assert len(response.data) < 1000
    assert b"x" * 100 not in response.data and b"p" * 100 not in response.data


# --- authentication -----------------------------------------------------------------------------


def _flip_last_char(token: str) -> str:
    """Mistype the token's last character (the checksum no longer matches)."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


@pytest.mark.parametrize(
    ("make_header", "code"),
    [
        pytest.param(lambda app, m: None, "missing_token", id="no-header"),
        pytest.param(lambda app, m: "", "missing_token", id="empty-header"),
        pytest.param(lambda app, m: "Basic xyz", "malformed_token", id="basic"),
        pytest.param(lambda app, m: f"Token {m.token}", "malformed_token", id="other-scheme"),
        pytest.param(lambda app, m: "Bearer", "malformed_token", id="bearer-alone"),
        pytest.param(lambda app, m: "Bearer ", "malformed_token", id="bearer-space"),
        pytest.param(lambda app, m: "Bearer abc", "malformed_token", id="garbage-token"),
        pytest.param(lambda app, m: m.token, "malformed_token", id="token-without-scheme"),
        pytest.param(lambda app, m: f"Bearer {m.token[:-1]}", "malformed_token", id="truncated"),
        pytest.param(
            lambda app, m: f"Bearer {m.token.replace('dl_live_', 'dl_test_')}",
            "malformed_token",
            id="wrong-prefix",
        ),
        pytest.param(
            lambda app, m: f"Bearer {_flip_last_char(m.token)}", "malformed_token", id="checksum"
        ),
        pytest.param(
            lambda app, m: f"Bearer {tokens.generate().token}", "invalid_token", id="unknown-key"
        ),
        pytest.param(
            lambda app, m: f"Bearer {tokens.generate(m.key_id).token}",
            "invalid_token",
            id="wrong-secret",
        ),
        pytest.param(lambda app, m: f"Bearer {_revoked(app, m)}", "revoked_token", id="revoked"),
        pytest.param(lambda app, m: f"Bearer {_expired(app, m)}", "revoked_token", id="expired"),
    ],
)
def test_bad_credentials_are_refused_with_401(app, client, made, make_header, code):
    header = make_header(app, made)
    headers = {} if header is None else {"Authorization": header}
    response = client.post("/event", json=BASE, headers=headers)
    error = assert_envelope(response, 401, code)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "errors" not in error
    assert event_count(app) == 0


def _revoked(app, made) -> str:
    """Revoke the key; return its token."""
    with app.app_context():
        apikeys.revoke_key(db.session.get(ApiKey, made.key_pk))
    return made.token


def _expired(app, made) -> str:
    """Rotate the key with a 1-hour grace period two hours ago; return the old token."""
    with app.app_context():
        key = db.session.get(ApiKey, made.key_pk)
        apikeys.rotate_key(key, "1h", None, now=utcnow() - timedelta(hours=2))
    return made.token


def test_wrong_secret_is_indistinguishable_from_an_unknown_key(client, made):
    unknown = client.post("/event", json=BASE, headers=bearer(tokens.generate().token))
    wrong = client.post("/event", json=BASE, headers=bearer(tokens.generate(made.key_id).token))
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.data == wrong.data
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]


def test_old_key_works_during_the_rotation_grace_period_and_the_new_one_too(app, client, made):
    with app.app_context():
        key = db.session.get(ApiKey, made.key_pk)
        new = apikeys.rotate_key(key, "1h", None).token
    assert_stored_204(post(client, BASE, made.token))
    assert_stored_204(post(client, BASE, new))
    assert len(stored_events(app, made.site_id)) == 2


@pytest.mark.parametrize(
    "template",
    [
        "Bearer {}",
        "bearer {}",
        "BEARER {}",
        "Bearer {} ",
        "Bearer  {}",
        " Bearer {}",
        "Bearer {}\t",
        "Bearer {}\n",
        "Bearer {}\r\n",
    ],
    ids=repr,
)
def test_token_with_surrounding_whitespace_works(client, made, template):
    # Straight into the WSGI environ: the test client refuses newlines in header values.
    response = client.post(
        "/event",
        json=BASE,
        environ_overrides={"HTTP_AUTHORIZATION": template.format(made.token)},
    )
    assert_stored_204(response)


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(lambda c, m: post(c, BASE, m.token), id="204"),
        pytest.param(lambda c, m: post(c, BASE, m.token, query="?validate=1"), id="200"),
        pytest.param(lambda c, m: post(c, {}, m.token), id="400"),
        pytest.param(lambda c, m: post(c, BASE), id="401"),
        pytest.param(lambda c, m: post(c, BASE, m.token, content_type="text/plain"), id="415"),
        pytest.param(lambda c, m: post(c, _padded(MAX_BODY + 1), m.token), id="413"),
        pytest.param(lambda c, m: c.get("/event", headers=bearer(m.token)), id="405"),
    ],
)
def test_no_cookies_and_no_cors_on_any_event_response(client, made, send):
    client.set_cookie("session", "whatever")
    response = send(client, made)
    assert "Set-Cookie" not in response.headers
    assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")]


def test_a_logged_in_browser_session_gets_no_cookie_and_needs_no_csrf(client, made):
    sign_up(client, "someone@example.com")
    response = post(client, BASE, made.token, headers={"Origin": "https://evil.example"})
    assert_stored_204(response)
    assert "Set-Cookie" not in response.headers
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize("with_token", [False, True])
def test_cors_preflight_is_not_granted(client, made, with_token):
    headers = {
        "Origin": "https://evil.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    if with_token:
        headers.update(bearer(made.token))
    response = client.options("/event", headers=headers)
    assert not [h for h in response.headers.keys() if h.lower().startswith("access-control-")]
    assert "Set-Cookie" not in response.headers
    assert response.status_code < 500


# --- validate mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["1", "true"])
def test_validate_mode_answers_the_normalised_event_and_stores_nothing(app, client, made, flag):
    body = {
        "event_name": "success",
        "name": "paid",
        "page_path": "/checkout?card=4111#x",
        "success_value": 9.99,
        "success_user_id": 42,
        "properties": {"plan": "pro", "user_email": "a@b.c", "phone": "123"},
        "event_id": "evt-1",
    }
    response = post(client, body, made.token, query=f"?validate={flag}")
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["valid"] is True
    normal = answer["event"]
    assert normal["page_path"] == "/checkout"
    assert normal["success_user_id"] == "42"
    assert normal["success_value"] == 9.99
    assert normal["properties"] == {"plan": "pro"}
    assert normal["event_id"] == "evt-1"
    assert normal["timestamp"].endswith("Z")
    fields = sorted(w["field"] for w in answer["warnings"])
    assert fields == ["properties.phone", "properties.user_email"]
    assert all(w["code"] and w["message"] for w in answer["warnings"])
    assert "a@b.c" not in response.get_data(as_text=True)
    assert event_count(app) == 0
    # Validation did not reserve the event_id: the real send is stored, not a duplicate.
    real = post(client, body, made.token)
    assert_stored_204(real)
    assert "DataLook-Duplicate" not in real.headers


def test_validate_mode_refuses_what_the_real_send_refuses(app, client, made):
    error = assert_envelope(post(client, {"page_path": "x"}, made.token, query="?validate=1"), 400)
    assert sorted(p["field"] for p in error["errors"]) == ["event_name", "page_path"]
    response = post(client, BASE, query="?validate=1")
    assert_envelope(response, 401, "missing_token")
    assert event_count(app) == 0


# --- deduplication ------------------------------------------------------------------------------


def test_repeated_event_id_is_a_duplicate_and_stored_once(app, client, made):
    body = event(event_name="success", name="paid", success_value=9.99, event_id="pay-1")
    first = post(client, body, made.token)
    assert_stored_204(first)
    assert "DataLook-Duplicate" not in first.headers
    for _ in range(2):
        again = post(client, {**body, "success_value": 5}, made.token)
        assert_stored_204(again)
        assert again.headers["DataLook-Duplicate"] == "true"
    (stored,) = stored_events(app, made.site_id)
    assert stored["success_value"] == 9.99
    with app.app_context():
        assert stats.overview(made.site_id).revenue == 9.99
        assert stats.success_rules(made.site_id)[0].count == 1


def test_event_id_is_per_site_and_shared_by_the_keys_of_a_site(app, client, made):
    other_key = second_key(app, made.site_id)
    other_site = create_token(app)
    body = event(event_id="same-id")
    assert "DataLook-Duplicate" not in post(client, body, made.token).headers
    assert post(client, body, other_key.token).headers["DataLook-Duplicate"] == "true"
    assert "DataLook-Duplicate" not in post(client, body, other_site.token).headers
    assert len(stored_events(app, made.site_id)) == 1
    assert len(stored_events(app, other_site.site_id)) == 1


def test_events_without_event_id_are_never_duplicates(app, client, made):
    for _ in range(3):
        response = post(client, BASE, made.token)
        assert "DataLook-Duplicate" not in response.headers
    assert len(stored_events(app, made.site_id)) == 3


# --- meaning: success rules and visitors --------------------------------------------------------


def test_first_success_with_a_new_name_registers_the_rule(app, client, made):
    name = f"paid-{uuid.uuid4().hex[:8]}"
    start = now = utcnow()
    stamps = [now - timedelta(hours=3), now - timedelta(hours=1), now - timedelta(hours=2)]
    for stamp in stamps:
        body = event(event_name="success", name=name, timestamp=iso(stamp))
        assert_stored_204(post(client, body, made.token))
    # Other kinds with a name do not register a rule.
    assert_stored_204(post(client, event(event_name="custom", name="not-a-rule"), made.token))
    with app.app_context():
        rows = db.session.scalars(
            select(SuccessRule).where(SuccessRule.site_id == made.site_id)
        ).all()
        assert [row.name for row in rows] == [name]
        assert start <= rows[0].first_seen_at <= utcnow()
        (rule,) = stats.success_rules(made.site_id)
    assert rule.name == name
    assert rule.count == 3
    assert rule.last_seen_at == max(stamps).replace(microsecond=stamps[0].microsecond)


def test_rules_are_per_site(app, client, made):
    other = create_token(app)
    name = f"signup-{uuid.uuid4().hex[:8]}"
    for token in (made.token, other.token):
        assert_stored_204(post(client, event(event_name="success", name=name), token))
    with app.app_context():
        assert [r.name for r in stats.success_rules(made.site_id)] == [name]
        assert [r.name for r in stats.success_rules(other.site_id)] == [name]


def test_rule_registration_does_not_trust_a_stale_process_cache(
    app, client, made, tmp_path, migrated_db
):
    name = "paid-customer-cache"
    assert_stored_204(post(client, event(event_name="success", name=name), made.token))
    instance = tmp_path / "other-instance"
    instance.mkdir()
    shutil.copy(migrated_db, instance / "datalook.db")
    other_app = _make_app(instance)
    try:
        other = create_token(other_app)
        assert other.site_id == made.site_id  # a fresh database numbers its sites the same
        body = event(event_name="success", name=name)
        assert_stored_204(post(other_app.test_client(), body, other.token))
        with other_app.app_context():
            assert [r.name for r in stats.success_rules(other.site_id)] == [name]
    finally:
        with other_app.app_context():
            db.engine.dispose()


def test_visitors_are_counted_by_user_id_and_anonymous_events_each_count(app, client, made):
    sends = [
        {"success_user_id": "u1"},
        {"success_user_id": "u1"},
        {"success_user_id": "u1", "event_name": "success", "name": "paid"},
        {"success_user_id": 42},
        {"success_user_id": "42"},  # the same visitor as the integer 42
        {},
        {},
        {"success_user_id": None},
    ]
    for changes in sends:
        assert_stored_204(post(client, event(**changes), made.token))
    with app.app_context():
        figures = stats.overview(made.site_id)
    assert figures.events == 8
    assert figures.conversions == 1
    assert figures.visitors == 2 + 3


def test_a_user_id_never_collides_with_an_anonymous_visitor(app, client, made):
    assert_stored_204(post(client, BASE, made.token))
    (anonymous,) = stored_events(app, made.site_id)
    # Whatever the anonymous visitor's id is, a user with that id is someone else.
    raw = anonymous["visitor_id"]
    for candidate in {raw, raw.partition(":")[2]}:
        assert_stored_204(post(client, event(success_user_id=candidate), made.token))
    with app.app_context():
        assert stats.overview(made.site_id).visitors == 1 + len({raw, raw.partition(":")[2]})


# --- durability: a locked database is a 503, never a 204 or a 500 -------------------------------


@pytest.fixture
def quick_made(quick_app):
    """A key on the quick app, made before any lock is taken."""
    return create_token(quick_app)


@pytest.fixture
def locked_db(quick_app, quick_made):
    """Hold SQLite's write lock on the app's database from another connection."""
    with quick_app.app_context():
        path = db.engine.url.database
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    yield holder
    if holder.in_transaction:
        holder.execute("ROLLBACK")
    holder.close()


def test_locked_database_answers_503_with_retry_after_and_stores_nothing(
    quick_app, quick_made, locked_db
):
    app, client, made = quick_app, quick_app.test_client(), quick_made
    body = event(event_name="success", name="paid", success_value=1, event_id="locked-1")
    response = post(client, body, made.token)
    error = assert_envelope(response, 503, "unavailable")
    assert int(response.headers["Retry-After"]) >= 1
    assert "errors" not in error
    locked_db.execute("ROLLBACK")
    assert event_count(app) == 0
    # The retry the 503 asked for is stored, and is not mistaken for a duplicate.
    retry = post(client, body, made.token)
    assert_stored_204(retry)
    assert "DataLook-Duplicate" not in retry.headers
    assert len(stored_events(app, made.site_id)) == 1


@pytest.mark.parametrize(
    "body",
    [
        '{"event_name": "custom", "page_path": "/\\ud800", "success_user_id": ' + "9" * 25 + "}",
        '{"event_name": "custom", "page_path": "/p", "success_value": NaN, "x": ' + "9" * 25 + "}",
        '{"event_name": "custom", "page_path": "/\\ud800"}',
    ],
)
def test_unstorable_json_is_refused_on_both_parsers(app, client, made, body):
    error = assert_envelope(post(client, body, made.token), 400)
    assert error["code"] == "invalid_json"
    assert event_count(app) == 0


def test_huge_integer_property_is_stored_exactly(app, client, made):
    body = '{"event_name": "custom", "page_path": "/p", "properties": {"n": ' + "7" * 30 + "}}"
    assert_stored_204(post(client, body, made.token))
    (stored,) = stored_events(app, made.site_id)
    assert stored["properties"] == {"n": int("7" * 30)}
