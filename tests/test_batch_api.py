"""POST /events: batches of 1–500 events, partial success, dedup, one request per batch."""

from __future__ import annotations

import io
import json
import multiprocessing
import sqlite3
import threading
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text

from datalook.extensions import db
from datalook.ingest.usage import counter_for
from datalook.keys import apikeys, tokens
from datalook.models import ApiKey, KeyUsage, SuccessRule, utcnow
from datalook.sql import filelock
from tests import raw_figures as stats
from tests.factories import bearer, create_token, event_count, stored_events

MAX_BATCH_BYTES = 1024 * 1024
BASE = {"event_name": "custom", "page_path": "/p"}


@pytest.fixture
def made(app):
    """A user, a site and a key (its limit raised), with the token."""
    return create_token(app)


def post_batch(client, body, token=None, content_type="application/json"):
    """POST /events; dicts and lists are sent as JSON, str and bytes as they are."""
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    headers = bearer(token) if token is not None else {}
    return client.post("/events", data=body, headers=headers, content_type=content_type)


def events(n: int, **changes) -> dict:
    """A batch body of n copies of the base event."""
    return {"events": [{**BASE, **changes} for _ in range(n)]}


def assert_envelope(response, status: int, code: str | None = None) -> dict:
    """Check the JSON error envelope and return its inner object."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    error = response.get_json()["error"]
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.mark.parametrize("n", [1, 2, 500])
def test_a_valid_batch_is_stored_whole(app, client, made, n):
    response = post_batch(client, events(n), made.token)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    answer = response.get_json()
    assert (answer["accepted"], answer["duplicates"], answer["errors"]) == (n, 0, [])
    assert len(stored_events(app, made.site_id)) == n


@pytest.mark.parametrize(
    ("body", "code"),
    [
        pytest.param("{}", "invalid_request", id="empty-object"),
        pytest.param('{"events": {}}', "invalid_request", id="events-object"),
        pytest.param('{"events": "x"}', "invalid_request", id="events-string"),
        pytest.param('{"events": null}', "invalid_request", id="events-null"),
        pytest.param('{"events": []}', "invalid_request", id="zero-events"),
        pytest.param(json.dumps(events(501)), "invalid_request", id="501-events"),
        pytest.param(json.dumps([BASE]), "invalid_request", id="bare-list"),
        pytest.param(json.dumps(BASE), "invalid_request", id="single-event"),
        pytest.param(json.dumps({**events(1), "extra": 1}), "invalid_request", id="extra-field"),
        pytest.param("null", "invalid_request", id="null"),
        pytest.param("", "invalid_json", id="empty-body"),
        pytest.param('{"events": [', "invalid_json", id="truncated"),
        pytest.param("events=1", "invalid_json", id="not-json"),
    ],
)
def test_an_unusable_body_is_a_400_and_stores_nothing(app, client, made, body, code):
    assert_envelope(post_batch(client, body, made.token), 400, code)
    assert event_count(app) == 0


def test_other_content_types_are_refused(app, client, made):
    response = post_batch(client, events(1), made.token, content_type="text/plain")
    assert_envelope(response, 415)
    assert event_count(app) == 0


def _padded_batch(size: int) -> bytes:
    """A valid batch padded with whitespace to exactly `size` bytes."""
    raw = json.dumps(events(500)).encode()
    return raw + b" " * (size - len(raw))


def test_a_batch_of_exactly_1_mib_is_accepted(app, client, made):
    response = post_batch(client, _padded_batch(MAX_BATCH_BYTES), made.token)
    assert response.status_code == 200
    assert response.get_json()["accepted"] == 500


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_batch_over_1_mib_is_refused_with_413(app, client, made, chunked):
    body = _padded_batch(MAX_BATCH_BYTES + 1)
    if chunked:
        response = client.post(
            "/events",
            input_stream=io.BytesIO(body),
            headers={**bearer(made.token), "Transfer-Encoding": "chunked"},
            content_type="application/json",
            environ_overrides={"wsgi.input_terminated": True},  # what gunicorn sets
        )
    else:
        response = post_batch(client, body, made.token)
    assert_envelope(response, 413)
    assert event_count(app) == 0


def _revoked(app, made) -> str:
    with app.app_context():
        apikeys.revoke_key(db.session.get(ApiKey, made.key_pk))
    return f"Bearer {made.token}"


@pytest.mark.parametrize(
    ("make_header", "code"),
    [
        pytest.param(lambda app, m: None, "missing_token", id="missing"),
        pytest.param(lambda app, m: "Basic xyz", "malformed_token", id="basic"),
        pytest.param(
            lambda app, m: f"Bearer {m.token[:-1]}{'B' if m.token.endswith('A') else 'A'}",
            "malformed_token",
            id="checksum",
        ),
        pytest.param(
            lambda app, m: f"Bearer {tokens.generate(m.key_id).token}",
            "invalid_token",
            id="wrong-secret",
        ),
        pytest.param(_revoked, "revoked_token", id="revoked"),
    ],
)
def test_same_authentication_as_single_events(app, client, made, make_header, code):
    header = make_header(app, made)
    headers = {} if header is None else {"Authorization": header}
    response = client.post("/events", json=events(3), headers=headers)
    assert_envelope(response, 401, code)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert event_count(app) == 0


def test_partial_success_stores_the_valid_events_and_reports_the_others(app, client, made):
    batch = [
        {**BASE, "page_path": "/first"},
        {**BASE, "event_name": "bogus"},
        {**BASE, "page_path": "/third?q=1"},
        5,
        {"event_name": "success", "page_path": "nope", "success_value": "1"},
        {**BASE, "succes_value": 1},
    ]
    response = post_batch(client, {"events": batch}, made.token)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["accepted"] == 2 and answer["duplicates"] == 0
    for error in answer["errors"]:
        assert set(error) >= {"index", "field", "code", "message"}
    reported = sorted((e["index"], e["field"], e["code"]) for e in answer["errors"])
    assert reported == [
        (1, "event_name", "invalid_choice"),
        (3, "", "not_an_object"),
        (4, "name", "required"),
        (4, "page_path", "invalid_path"),
        (4, "success_value", "not_a_number"),
        (5, "succes_value", "unknown_field"),
    ]
    assert [e["page_path"] for e in stored_events(app, made.site_id)] == ["/first", "/third"]


def test_a_batch_of_only_invalid_events_is_a_200_that_stores_nothing(app, client, made):
    response = post_batch(client, {"events": [{}, {"event_name": "x"}]}, made.token)
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["accepted"] == 0
    assert {e["index"] for e in answer["errors"]} == {0, 1}
    assert event_count(app) == 0


def test_event_ids_are_deduplicated_within_a_batch_and_across_requests(app, client, made):
    first = post_batch(
        client,
        {"events": [{**BASE, "event_id": i} for i in ("a", "b", "a", "c", "b")]},
        made.token,
    ).get_json()
    assert (first["accepted"], first["duplicates"]) == (3, 2)
    second = post_batch(
        client,
        {"events": [{**BASE, "event_id": i} for i in ("a", "d", "c")] + [BASE]},
        made.token,
    ).get_json()
    assert (second["accepted"], second["duplicates"]) == (2, 2)
    single = client.post("/event", json={**BASE, "event_id": "d"}, headers=bearer(made.token))
    assert single.headers["DataLook-Duplicate"] == "true"
    ids = sorted(str(e["event_id"]) for e in stored_events(app, made.site_id))
    assert ids == ["None", "a", "b", "c", "d"]


def test_batch_values_rules_and_pii_mean_what_single_events_mean(app, client, made):
    paid = {"event_name": "success", "name": "paid", "page_path": "/ok", "success_value": 9.99}
    batch = [
        {**paid, "success_user_id": "u1"},
        {**paid, "success_user_id": "u1", "properties": {"user_email": "a@b.c", "plan": "x"}},
        {**paid},
    ]
    answer = post_batch(client, {"events": batch}, made.token).get_json()
    assert answer["accepted"] == 3
    assert answer["stripped_keys"] == [{"index": 1, "keys": ["user_email"]}]
    with app.app_context():
        figures = stats.overview(made.site_id)
        (rule,) = stats.success_rules(made.site_id)
    assert Decimal(str(figures.revenue)) == Decimal("29.97")
    assert figures.visitors == 2
    assert (rule.name, rule.count) == ("paid", 3)
    stored = stored_events(app, made.site_id)
    assert stored[1]["properties"] == {"plan": "x"}
    assert stored[1]["stripped_keys"] == ["user_email"]


@pytest.mark.parametrize(
    "fourth",
    [
        pytest.param(lambda c, t: post_batch(c, events(500), t), id="batch-of-500"),
        pytest.param(lambda c, t: post_batch(c, events(1), t), id="batch-of-1"),
        pytest.param(lambda c, t: c.post("/event", json=BASE, headers=bearer(t)), id="single"),
    ],
)
def test_a_batch_counts_as_one_request_against_the_rate_limit(app, client, fourth):
    made = create_token(app, rate_limit="3 per 10 seconds")
    for size in (500, 1, 200):  # three requests, 701 events
        assert post_batch(client, events(size), made.token).status_code == 200
    refused = fourth(client, made.token)
    assert_envelope(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert event_count(app) == 701


def test_usage_counters_and_last_used_are_right_after_batching(app, client, made):
    counter = counter_for(app.extensions)  # this app's own counter: no other test's counts in it
    start = utcnow()
    for size in (10, 500, 1):
        assert post_batch(client, events(size), made.token).status_code == 200
    assert client.post("/event", json=BASE, headers=bearer(made.token)).status_code == 204
    assert post_batch(client, "{}", made.token).status_code == 400  # still a request of the key
    assert client.post("/events", json=events(1)).status_code == 401  # not the key's request
    end = utcnow()
    with app.app_context():
        counter.flush(db.engine)
        requests_counted = db.session.scalar(
            select(func.sum(KeyUsage.requests)).where(KeyUsage.api_key_id == made.key_pk)
        )
        last_used = db.session.get(ApiKey, made.key_pk).last_used_at
    assert requests_counted == 5
    assert start <= last_used <= end


def _hold_writers_lock(path: str, held, release) -> None:
    """Another process holding the database's writers' lock until told to let go."""
    with filelock.WriteLock(path + ".lock").hold():
        held.set()
        release.wait(10)


def test_the_usage_flush_queues_behind_the_writers_lock(app, client, made):
    """A flush that skipped the lock would meet SQLITE_BUSY mid-commit of an event, whose
    handler sleeps while the event's writer holds the lock, stalling every writer."""
    counter = counter_for(app.extensions)
    assert client.post("/event", json=BASE, headers=bearer(made.token)).status_code == 204
    with app.app_context():
        engine = db.engine
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold_writers_lock, args=(engine.url.database, held, release))
    holder.start()
    try:
        assert held.wait(10)
        flushed = threading.Thread(target=counter.flush, args=(engine,))
        flushed.start()
        flushed.join(0.5)
        assert flushed.is_alive()  # waiting for the lock, not writing around it
        release.set()
        flushed.join(10)
        assert not flushed.is_alive()
    finally:
        release.set()
        holder.join(10)
    with app.app_context():
        counted = db.session.scalar(
            select(func.sum(KeyUsage.requests)).where(KeyUsage.api_key_id == made.key_pk)
        )
    assert counted == 1


def test_a_locked_database_is_a_503_and_no_event_of_the_batch_is_stored(quick_app):
    made = create_token(quick_app)
    with quick_app.app_context():
        path = db.engine.url.database
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        response = post_batch(quick_app.test_client(), events(50), made.token)
        assert_envelope(response, 503, "unavailable")
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert event_count(quick_app) == 0


# --- property: any batch body → a documented answer, and "accepted" is what was stored --------

# Containers always draw from `inner` (Hypothesis checks that extend recurses, and an empty
# draw looks like it does not); the empty ones come from the base instead.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=10)
    | st.sampled_from([[], {}]),
    lambda inner: (
        st.lists(inner, min_size=1, max_size=3)
        | st.dictionaries(st.text(max_size=8), inner, min_size=1)
    ),
    max_leaves=6,
)
events_ish = st.one_of(
    st.fixed_dictionaries(
        {
            "event_name": st.sampled_from(["pageview", "success", "custom", "x"]),
            "page_path": st.sampled_from(["/", "/a?b", "b"]),
        },
        optional={
            "name": st.sampled_from(["paid", ""]),
            "event_id": st.sampled_from(["a", "b", "c", "a b"]),
            "success_value": st.sampled_from([9.99, "1", 1e13]),
            "properties": st.dictionaries(st.sampled_from(["plan", "email"]), json_values),
        },
    ),
    json_values,
)
batch_bodies = st.one_of(
    st.lists(events_ish, min_size=0, max_size=12).map(lambda items: {"events": items}),
    st.lists(events_ish, min_size=1, max_size=12).map(lambda items: {"events": items}),
    json_values,
).map(lambda body: json.dumps(body).encode()) | st.binary(max_size=100)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=batch_bodies)
def test_any_batch_gets_a_documented_answer_and_accepted_is_what_was_stored(
    app, client, made, body
):
    before = event_count(app)
    response = post_batch(client, body, made.token)
    stored = event_count(app) - before
    assert response.status_code in {200, 400, 413, 503}, response.data[:300]
    if response.status_code == 200:
        answer = response.get_json()
        assert stored == answer["accepted"]
        assert all(set(e) >= {"index", "field", "code", "message"} for e in answer["errors"])
    else:
        assert stored == 0
        assert_envelope(response, response.status_code)


def test_success_rules_are_capped_per_site(app, client, made, monkeypatch):
    """A new rule name beyond the site's cap is refused naming `name`; known ones still go."""
    from datalook.ingest import storage

    monkeypatch.setattr(storage, "MAX_RULES_PER_SITE", 3)
    headers = bearer(made.token)
    success = {"event_name": "success", "page_path": "/paid"}
    batch = {"events": [{**success, "name": f"rule-{n}"} for n in range(5)]}
    answer = client.post("/events", json=batch, headers=headers)
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["accepted"] == 3
    assert [(e["index"], e["field"], e["code"]) for e in body["errors"]] == [
        (3, "name", "too_many_rules"),
        (4, "name", "too_many_rules"),
    ]
    refused = client.post("/event", json={**success, "name": "rule-9"}, headers=headers)
    assert refused.status_code == 400
    (error,) = refused.get_json()["error"]["errors"]
    assert (error["field"], error["code"]) == ("name", "too_many_rules")
    known = client.post("/event", json={**success, "name": "rule-1"}, headers=headers)
    assert known.status_code == 204
    with app.app_context():
        names = db.session.scalars(select(SuccessRule.name).order_by(SuccessRule.name)).all()
    assert names == ["rule-0", "rule-1", "rule-2"]
    assert event_count(app) == 4


def test_the_process_cache_of_known_rules_is_bounded(app, client, made, monkeypatch):
    from datalook.ingest import storage

    monkeypatch.setattr(storage, "KNOWN_RULES_CACHED", 5)
    batch = {
        "events": [{"event_name": "success", "page_path": "/p", "name": f"r{n}"} for n in range(20)]
    }
    assert client.post("/events", json=batch, headers=bearer(made.token)).status_code == 200
    assert len(storage._known_rules) <= 5


def _stored_rows(app, site_id: int) -> list[dict]:
    """Every column of the site's stored events, oldest first, without what differs by
    request (the row id, the time of receipt, the retry id)."""
    with app.app_context():
        rows = db.session.execute(
            text("SELECT * FROM events WHERE site_id = :site ORDER BY id"), {"site": site_id}
        ).mappings()
        return [
            {k: v for k, v in row.items() if k not in ("id", "received_at", "event_id")}
            for row in rows
        ]


def test_a_batch_stores_the_same_rows_by_every_path(app, client, made):
    # Whole and well formed (decoded in one pass, NULL columns left out of the INSERT), with
    # a refused event beside (parsed, then validated one by one), and one event at a time.
    at = utcnow().replace(microsecond=0).isoformat() + "+02:00"
    batch = [
        {"event_name": "pageview", "page_path": "/a?x=1", "success_user_id": "u1"},
        {
            "event_name": "success",
            "name": "paid",
            "page_path": "/p",
            "success_value": 9.99,
            "success_user_id": 42,
            "properties": {"plan": "x", "email": "a@b.c"},
        },
        {
            "event_name": "custom",
            "page_path": "/c",
            "success_user_id": "u2",
            "properties": {"n": 1, "f": 1.5, "b": True},
            "context": {"referrer": "https://www.google.com/", "utm": {"source": "news"}},
        },
        {"event_name": "click", "page_path": "/d", "success_user_id": "u3", "event_id": "k"},
    ]
    batch = [{**event, "timestamp": at} for event in batch]

    def retried(suffix: str) -> list[dict]:
        return [{**e, "event_id": e["event_id"] + suffix} if "event_id" in e else e for e in batch]

    whole = post_batch(client, {"events": retried("1")}, made.token).get_json()
    assert (whole["accepted"], whole["errors"]) == (4, [])
    one_pass = _stored_rows(app, made.site_id)
    mixed = post_batch(client, {"events": [*retried("2"), {"bad": 1}]}, made.token).get_json()
    assert mixed["accepted"] == 4 and {error["index"] for error in mixed["errors"]} == {4}
    for event in retried("3"):
        assert post_batch(client, {"events": [event]}, made.token).get_json()["accepted"] == 1
    rows = _stored_rows(app, made.site_id)
    assert len(one_pass) == 4
    assert rows == one_pass * 3
    assert one_pass[0]["name"] is None and one_pass[0]["stripped_keys"] is None
    assert one_pass[1]["stripped_keys"] == '["email"]'
