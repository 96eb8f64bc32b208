"""Property: a POST /events body decoded and validated in one pass (ingest/typed_batch.py) is
accepted only when the usual path (body.parse_json, then schema.validate for each event)
accepts every event of it, and then with the same normalised events, in order."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datalook.envelope import ApiError
from datalook.ingest import schema, typed_batch
from datalook.ingest.body import parse_json
from tests.test_event_properties import around_now
from tests.test_quick_validation import _comparable
from tests.test_quick_validation import events as event_bodies


def _usual(raw: bytes, now: datetime) -> list | None:
    """The usual path's events of a body, comparable; None when it refuses the body or any
    event of it."""
    try:
        body = parse_json(raw)
    except ApiError:
        return None
    if not isinstance(body, dict) or set(body) != {"events"}:
        return None
    items = body["events"]
    if not isinstance(items, list) or not 1 <= len(items) <= schema.MAX_BATCH_EVENTS:
        return None
    answers = [_comparable(schema.validate(item, now)) for item in items]
    if any(event is None for event, _ in answers):
        return None
    return answers


def _typed(raw: bytes, now: datetime) -> list | None:
    """The one-pass path's events of a body, comparable as _usual's."""
    found = typed_batch.events(raw, now)
    return None if found is None else [_comparable((event, [])) for event in found]


def _assert_alike(raw: bytes) -> None:
    """The one-pass path accepts nothing the usual path refuses, and agrees on the rest."""
    now = datetime.now(UTC).replace(tzinfo=None)
    typed = _typed(raw, now)
    if typed is not None:
        assert typed == _usual(raw, now)


def _dumps(body: object, style: int) -> bytes:
    """JSON text as clients write it: escaped ASCII, raw UTF-8, compact or spaced."""
    if style == 0:
        return json.dumps(body).encode()
    if style == 1:
        return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    if style == 2:
        return json.dumps(body, indent=1, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        return orjson.dumps(body)
    except TypeError:  # integers beyond 64 bits, lone surrogates
        return json.dumps(body).encode()


batches = st.lists(event_bodies, min_size=0, max_size=4).map(lambda items: {"events": items})
# Events that are valid but for the odd value near a bound, so that whole batches often are.
texts = st.text(min_size=1, max_size=12)
good_events = st.fixed_dictionaries(
    {
        "event_name": st.sampled_from(["pageview", "click", "custom"]),
        "page_path": (
            st.sampled_from(["/", "/a?q=1#f", "/#x", "/" + "a" * 2047, "/" + "a" * 2048])
            | texts.map(lambda t: "/" + t)
        ),
    },
    optional={
        "name": st.sampled_from(["paid", "n" * 100, "n" * 101, "caf\u00e9"]) | texts,
        "success_user_id": (
            st.integers(-(2**70), 2**70) | texts | st.sampled_from(["u" * 256, "u" * 257])
        ),
        "success_value": (
            st.integers(-(10**12) - 1, 10**12 + 1)
            | st.integers(0, 8).flatmap(
                lambda places: st.decimals(-(10**12), 10**12, places=places).map(float)
            )
            | st.floats(-1e13, 1e13)
        ),
        "properties": st.dictionaries(
            st.sampled_from(["plan", "email", "ipAddress", "seats", "x" * 128, "x" * 129])
            | st.text(max_size=5),
            st.sampled_from(["a@b.example", "4111 1111 1111 1111", "10.0.0.1", "x" * 1025])
            | st.text(max_size=8)
            | st.integers()
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.booleans(),
            max_size=4,
        ),
        "event_id": st.sampled_from(["a", "b", "-", "x" * 64, "x" * 65, "a b"]),
        "timestamp": around_now(timedelta(days=7, hours=1), timedelta(hours=2), st.timezones()).map(
            lambda moment: moment.isoformat()
        ),
        "context": st.fixed_dictionaries(
            {},
            optional={
                "ip": st.sampled_from(["203.0.113.7", "2001:db8::1", "", "x"]),
                "user_agent": st.sampled_from(["Mozilla/5.0 (X11; Linux x86_64)", ""]),
                "referrer": st.sampled_from(["https://www.google.com/", "google.com"]),
                "utm": st.fixed_dictionaries({}, optional={"source": texts, "medium": texts}),
            },
        ),
    },
)
good_batches = st.lists(good_events, min_size=1, max_size=6).map(lambda items: {"events": items})
odd_bodies = st.one_of(
    batches,
    st.tuples(batches, st.text(max_size=8), event_bodies).map(lambda t: {**t[0], t[1]: t[2]}),
    event_bodies,
)


@settings(max_examples=600, deadline=None)
@given(body=odd_bodies, style=st.integers(0, 3))
def test_the_one_pass_path_accepts_only_what_the_usual_path_accepts(body, style):
    _assert_alike(_dumps(body, style))


@settings(max_examples=600, deadline=None)
@given(body=good_batches, style=st.integers(0, 3))
def test_nearly_valid_batches_are_decided_alike(body, style):
    _assert_alike(_dumps(body, style))


@settings(max_examples=300, deadline=None)
@given(body=batches | good_batches, style=st.integers(0, 3), data=st.data())
def test_bytes_around_a_batch_change_nothing(body, style, data):
    raw = _dumps(body, style)
    cut = data.draw(st.integers(0, len(raw)))
    extra = data.draw(
        st.sampled_from([b"", b" ", b"x", b",", b"}", b"\xef\xbb\xbf", b"\xff", b"\x00", b"\n"])
    )
    _assert_alike(raw[:cut] + extra + raw[cut:])


_EVENT = '{"event_name": "custom", "page_path": "/p"%s}'


@pytest.mark.parametrize(
    "raw",
    [
        # Integers beyond 64 bits: exact on both paths (the usual one parses them apart).
        _EVENT % ', "success_user_id": 123456789012345678901234567890',
        _EVENT % ', "properties": {"n": 18446744073709551616}',
        _EVENT % ', "properties": {"n": -9223372036854775809}',
        _EVENT % ', "success_value": 9223372036854775808',
        # Numbers a double cannot hold, and what JSON does not have.
        _EVENT % ', "properties": {"n": 1e400}',
        _EVENT % ', "properties": {"n": NaN}',
        _EVENT % ', "properties": {"n": Infinity}',
        _EVENT % ', "success_value": 0.1234567890123456789',
        _EVENT % ', "success_value": 1E2',
        _EVENT % ', "success_value": -0.0',
        _EVENT % ', "success_value": 01',
        _EVENT % ', "success_value": .5',
        _EVENT % ', "success_value": +1',
        # Strings: lone and paired surrogates, escapes of control characters.
        _EVENT % ', "name": "\\ud800"',
        _EVENT % ', "name": "\\udc00x"',
        _EVENT % ', "name": "\\ud83d\\ude00"',
        _EVENT % ', "name": "a\\u0000b"',
        _EVENT % ', "name": "a\\u0085b"',
        _EVENT % ', "name": "a\\u2028b"',
        '{"event_name": "custom", "page_path": "/p\\u007f"}',
        '{"event_name": "custom", "page_path": "/caf\\u00e9?q=1#x"}',
        # Repeated keys: the last one counts, on both paths.
        '{"event_name": "custom", "page_path": "/p", "page_path": "nope"}',
        '{"event_name": "custom", "page_path": "nope", "page_path": "/p"}',
        _EVENT % ', "properties": {"a": 1, "b": 2, "a": [1]}',
        _EVENT % ', "properties": {"a": [1], "b": 2, "a": 1}',
        # null where a value is required or optional.
        '{"event_name": null, "page_path": "/p"}',
        '{"event_name": "success", "page_path": "/p", "name": null}',
        _EVENT % ', "properties": null, "timestamp": null, "context": null',
        _EVENT % ', "context": {}',
        _EVENT % ', "context": {"ip": "", "user_agent": "", "referrer": ""}',
        _EVENT % ', "context": {"ip": "::ffff:1.2.3.4", "utm": {"source": " x "}}',
        _EVENT % ', "persistent_id": "5f0c9a526f7e4e559d0e1c2b3a4d5e6f"',
        _EVENT % ', "success_user_id": true',
        _EVENT % ', "success_user_id": -0',
        _EVENT % ', "event_id": "a\\n"',
        _EVENT % ', "timestamp": "2026-01-31T12:00:00"',
    ],
)
def test_edge_cases_of_json_and_fields_are_decided_alike(raw):
    body = f'{{"events": [{raw}, {_EVENT % ""}]}}'.encode()
    _assert_alike(body)
    _assert_alike(b'{"events": [' + raw.encode() + b"]}")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"events": [{"event_name": "custom", "page_path": "/p"}], "events": []}',
        b'{"events": [], "events": [{"event_name": "custom", "page_path": "/p"}]}',
        b'{"events": [{"event_name": "custom", "page_path": "/p"}], "extra": 1}',
        b'{"events": []}',
        b'{"events": [null]}',
        b'{"events": {"event_name": "custom", "page_path": "/p"}}',
        b'[{"event_name": "custom", "page_path": "/p"}]',
        b'\xef\xbb\xbf{"events": [{"event_name": "custom", "page_path": "/p"}]}',
        b'{"events": [{"event_name": "custom", "page_path": "/p\xff"}]}',
        b'{"events": [{"event_name": "custom", "page_path": "/p"}]} x',
        b'{"events": [{"event_name": "custom", "page_path": "/p"},]}',
        b"{\"events\": [{'event_name': 'custom', 'page_path': '/p'}]}",
        b'{"events": [{"event_name": "custom", "page_path": "/p", "properties": '
        + b'{"a": ' * 600
        + b"1"
        + b"}" * 600
        + b"}]}",
        json.dumps({"events": [{"event_name": "custom", "page_path": "/p"}] * 500}).encode(),
        json.dumps({"events": [{"event_name": "custom", "page_path": "/p"}] * 501}).encode(),
    ],
)
def test_batch_shapes_are_decided_alike(raw):
    _assert_alike(raw)


def test_the_usual_batch_takes_the_one_pass_path():
    # Not a speed claim: the docs' example batch, and one with every field, are decided here.
    now = datetime.now(UTC).replace(tzinfo=None)
    full = {
        "event_name": "success",
        "name": "paid-customer",
        "page_path": "/checkout/success?from=mail",
        "success_user_id": 42,
        "success_value": 9.99,
        "properties": {"plan": "starter", "seats": 3, "email": "x", "note": "a@b.example"},
        "event_id": "3f0c9a52-6f7e-4e55-9d0e-1c2b3a4d5e6f",
        "timestamp": now.replace(tzinfo=UTC).isoformat(),
        "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "utm": {"source": "x"}},
    }
    raw = orjson.dumps({"events": [full, {"event_name": "custom", "page_path": "/"}]})
    typed = _typed(raw, now)
    assert typed is not None
    assert typed == _usual(raw, now)
    assert typed[0][0]["stripped_keys"] == ["email", "note"]


@settings(max_examples=500, deadline=None)
@given(
    number=st.from_regex(
        r"-?(0|[1-9][0-9]{0,24})(\.[0-9]{1,25})?([eE][+-]?[0-9]{1,3})?", fullmatch=True
    )
)
def test_numbers_are_read_as_the_usual_path_reads_them(number):
    # Long digit runs take the standard parser on the usual path; doubles and integers of
    # any size must come out the same.
    event = f'{{"event_name": "custom", "page_path": "/p", "properties": {{"n": {number}}}}}'
    _assert_alike(f'{{"events": [{event}]}}'.encode())
    _assert_alike(f'{{"events": [{event[:-1]}, "success_value": {number}}}]}}'.encode())
