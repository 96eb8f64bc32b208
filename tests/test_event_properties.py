"""Property: whatever a client sends to POST /event, the answer is documented and honest.

Any body (bytes, JSON of any shape, events that are nearly valid), any content type, any
Authorization header (the valid token often) → one of 204/200/400/401/413/415/429/503 with
the documented envelope, never a 5xx otherwise; and an event is stored exactly when the
answer is a 204 without DataLook-Duplicate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from datalook.keys import tokens
from tests.factories import create_token, event_count

ANSWERS = {200, 204, 400, 401, 413, 415, 429, 503}
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

# Header values travel as latin-1 in WSGI; CR and LF cannot be in one.
header_text = st.text(
    alphabet=st.characters(max_codepoint=0xFF, blacklist_characters="\r\n"), max_size=60
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)  # NaN/Infinity: not JSON once dumped
    | st.text(max_size=20)
)
# Containers always draw from `inner` (Hypothesis checks that extend recurses, and an empty
# draw looks like it does not); the empty ones come from the base instead.
json_values = st.recursive(
    json_scalars | st.sampled_from([[], {}]),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, min_size=1)
    ),
    max_leaves=8,
)


def _stamp(moment: datetime) -> str:
    return moment.isoformat()


def around_now(before: timedelta, after: timedelta, zones: st.SearchStrategy) -> st.SearchStrategy:
    """Datetimes within [now - before, now + after], `now` taken when the test first draws
    (st.deferred), never when this module is imported: a slow suite must not age them."""

    def build() -> st.SearchStrategy:
        now = datetime.now(UTC).replace(tzinfo=None)
        return st.datetimes(min_value=now - before, max_value=now + after, timezones=zones)

    return st.deferred(build)


timestamps = st.one_of(
    # Realistic: around now, in any offset, sometimes naive.
    around_now(timedelta(days=9), timedelta(hours=3), st.none() | st.timezones()).map(_stamp),
    # Anywhere in the calendar away from its very edges (see test_event_api for those).
    st.datetimes(
        min_value=datetime(2, 1, 1),
        max_value=datetime(9998, 12, 31),
        timezones=st.none() | st.timezones(),
    ).map(_stamp),
    st.sampled_from(["yesterday", "", "2026-13-01T00:00:00Z", "now"]),
    json_values,
)

property_keys = st.sampled_from(["plan", "email", "ssnLast4", "user_email", "seats", ""]) | (
    st.text(max_size=130)
)
property_values = (
    st.text(max_size=30)
    | st.integers()
    | st.floats(allow_nan=False)
    | st.booleans()
    | st.none()
    | st.lists(st.integers(), max_size=2)
    | st.just("x" * 1025)
)


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """Valid nine times out of ten, so that whole events are often valid."""
    return st.integers(0, 9).flatmap(lambda n: bad if n == 9 else good)


near_valid_events = st.fixed_dictionaries(
    {
        "event_name": mostly(
            st.sampled_from(["pageview", "click", "success", "custom"]),
            st.sampled_from(["Pageview", "", "purchase"]) | json_values,
        ),
        "page_path": mostly(
            st.sampled_from(["/", "/checkout/success", "/a?q=1#f"])
            | st.text(max_size=30).map(lambda t: "/" + t),
            st.sampled_from(["", "a/b", "/" + "a" * 2048]) | json_values,
        ),
    },
    optional={
        "name": mostly(
            st.sampled_from(["paid-customer", "signup"]),
            st.sampled_from(["", "n" * 101]) | json_values,
        ),
        "success_user_id": mostly(
            st.sampled_from(["user_42", 42, 2**80]) | st.text(min_size=1, max_size=10),
            st.sampled_from(["", True, 1.5]) | json_values,
        ),
        "success_value": mostly(
            st.sampled_from([9.99, 0, -1, 1e12]) | st.integers(-(10**12), 10**12),
            st.sampled_from([1e13, "9.99", True, 0.1234567]) | st.floats() | st.integers(),
        ),
        "properties": mostly(
            st.dictionaries(property_keys, property_values, max_size=6), json_values
        ),
        # A small pool of ids, so that duplicates happen.
        "event_id": mostly(
            st.sampled_from(["a", "b", "dup-1"]),
            st.sampled_from(["a b", "x" * 65, "a\n"]) | json_values,
        ),
        "timestamp": mostly(
            around_now(timedelta(days=6), timedelta(minutes=50), st.timezones()).map(_stamp),
            timestamps,
        ),
    },
)
# Now and then a field nobody knows.
near_valid_events = mostly(
    near_valid_events,
    st.tuples(near_valid_events, st.text(max_size=15), json_values).map(
        lambda t: {**t[0], t[1]: t[2]}
    ),
)


def _dump(value: object) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    near_valid_events.map(_dump),
    near_valid_events.map(_dump),
    near_valid_events.map(_dump).flatmap(
        lambda raw: st.integers(0, len(raw)).map(lambda cut: raw[:cut])  # truncated JSON
    ),
    json_values.map(_dump),
    st.binary(max_size=200),
    st.sampled_from([b"", b" ", b"null", b"[]", b"\xef\xbb\xbf{}", b" " * (64 * 1024 + 1)]),
)

content_types = mostly(
    st.sampled_from(
        [
            "application/json",
            "application/json; charset=utf-8",
            "application/json; charset=latin-1",
            "APPLICATION/JSON",
        ]
    ),
    st.sampled_from(
        [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "multipart/form-data",
            "",
            None,
        ]
    )
    | header_text,
)

queries = st.sampled_from(["", "", "", "?validate=1", "?validate=true", "?validate=0"])


@st.composite
def authorizations(draw, token: str) -> str | None:
    """The valid token most of the time; otherwise every kind of wrong."""
    kind = draw(
        st.sampled_from(
            ["valid"] * 14
            + ["none", "text", "bearer-text", "unknown", "wrong-secret", "mutated", "scheme"]
        )
    )
    if kind == "valid":
        return draw(st.sampled_from(["Bearer {}", "bearer {}", " Bearer {} \t"])).format(token)
    if kind == "none":
        return None
    if kind == "text":
        return draw(header_text)
    if kind == "bearer-text":
        return "Bearer " + draw(header_text)
    if kind == "unknown":
        return "Bearer " + tokens.generate().token
    if kind == "wrong-secret":
        key_id = token[len(tokens.PREFIX) :].split("_")[0]
        return "Bearer " + tokens.generate(key_id).token
    if kind == "mutated":
        index = draw(st.integers(0, len(token) - 1))
        char = draw(st.characters(max_codepoint=0xFF, blacklist_characters="\r\n"))
        return "Bearer " + token[:index] + char + token[index + 1 :]
    return draw(st.sampled_from(["Basic ", "Token ", "Bearer  ", ""])) + token


def check_envelope(response) -> None:
    """A non-2xx answer is the documented JSON error envelope."""
    assert response.mimetype == "application/json", response.data[:200]
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    for item in error.get("errors", []):
        assert isinstance(item["field"], str)
        assert isinstance(item["code"], str) and item["code"]
        assert isinstance(item["message"], str) and item["message"]


@pytest.fixture
def token(app):
    """A key whose limit is raised so that 429 does not dominate."""
    return create_token(app, rate_limit="100000 per 10 seconds").token


@SETTINGS
@given(
    body=bodies,
    content_type=content_types,
    query=queries,
    address=st.integers(1, 2**24 - 2),
    data=st.data(),
)
def test_any_request_gets_a_documented_answer(
    app, client, token, body, content_type, query, address, data
):
    authorization = data.draw(authorizations(token), label="authorization")
    environ = {"REMOTE_ADDR": f"10.{address >> 16}.{(address >> 8) & 255}.{address & 255}"}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    if content_type is not None:
        environ["CONTENT_TYPE"] = content_type
    before = event_count(app)

    response = client.post(f"/event{query}", data=body, environ_overrides=environ)

    stored = event_count(app) - before
    status = response.status_code
    event(f"status {status}{' duplicate' if response.headers.get('DataLook-Duplicate') else ''}")
    assert status in ANSWERS, (status, response.data[:300])
    assert "Set-Cookie" not in response.headers
    if status == 204:
        assert response.data == b""
        duplicate = response.headers.get("DataLook-Duplicate")
        assert duplicate in (None, "true")
        assert stored == (0 if duplicate else 1)
        return
    assert stored == 0
    if status == 200:
        answer = response.get_json()
        assert query in ("?validate=1", "?validate=true")
        assert answer["valid"] is True and isinstance(answer["warnings"], list)
        return
    check_envelope(response)
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) >= 0


def _reference_micros(value: float | int) -> int | None:
    """success_value's rule written out with Decimal alone: millionths, or None if refused."""
    from decimal import Decimal

    exact = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if abs(exact) > Decimal(10) ** 12:
        return None
    scaled = exact * 10**6
    return int(scaled) if scaled == scaled.to_integral_value() else None


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=-2e12, max_value=2e12),
        st.integers(min_value=-(10**15), max_value=10**15),
        st.decimals(min_value=-(10**13), max_value=10**13, places=6).map(float),
        st.sampled_from([9.99, -0.0, 0.1, 1e12, -1e12, 1e12 + 0.5, 999999999999.999999, 1e-6]),
    )
)
def test_success_value_matches_the_decimal_rule(value: float | int) -> None:
    from datalook.ingest.schema import _Problems, _value

    problems = _Problems()
    assert _value(problems, value) == _reference_micros(value)
    assert bool(problems.items) == (_reference_micros(value) is None)
