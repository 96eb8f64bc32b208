"""The ingestion API's own WSGI app, its dispatcher and its held connections.

POST /event and /events are answered by the Flask-free ingestion app beside the pages app;
it answers its own 404 and 405 in the JSON envelope, and the connection each worker thread
holds must never outlive a database error or the engine.
"""

from __future__ import annotations

import sqlite3

import pytest
from werkzeug.middleware.proxy_fix import ProxyFix

from datalook.extensions import db
from datalook.ingest.app import Dispatcher
from datalook.ingest.pipeline import client_address
from tests.factories import bearer, create_token, event_count

EVENT = {"event_name": "click", "page_path": "/pricing", "properties": {"email": "a@b.c"}}
BATCH = {"events": [EVENT, {"event_name": "nope"}]}


@pytest.fixture
def made(app):
    """A user, a site and a key (its limit raised), with the token."""
    return create_token(app)


def ingestion_for(app):
    """The app's ingestion context (its engine, held connections, limits)."""
    dispatcher = app.wsgi_app
    assert isinstance(dispatcher, Dispatcher)
    return dispatcher.ingestion.context


def test_api_answers_come_from_the_ingestion_app(app, client, made):
    headers = bearer(made.token)
    stored = client.post("/event", json=EVENT, headers=headers)
    assert stored.status_code == 204
    assert "Content-Type" not in stored.headers and stored.data == b""
    assert stored.headers["X-Content-Type-Options"] == "nosniff"
    assert stored.headers["DataLook-Stripped-Keys"] == "email"
    assert "Set-Cookie" not in stored.headers and "Vary" not in stored.headers
    first = client.post("/event", json={**EVENT, "event_id": "e-1"}, headers=headers)
    again = client.post("/event", json={**EVENT, "event_id": "e-1"}, headers=headers)
    assert (first.status_code, again.status_code) == (204, 204)
    assert again.headers["DataLook-Duplicate"] == "true"
    batch = client.post("/events", json=BATCH, headers=headers)
    assert batch.status_code == 200 and batch.get_json()["accepted"] == 1
    assert batch.headers["X-Content-Type-Options"] == "nosniff"
    assert event_count(app) == 3


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD"])
@pytest.mark.parametrize("path", ["/event", "/events"])
def test_other_methods_get_the_apis_own_405(client, method: str, path: str):
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST, OPTIONS"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    if method != "HEAD":
        assert response.get_json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/event", "/events"])
def test_options_lists_the_methods(client, path: str):
    response = client.options(path)
    assert response.status_code == 204
    assert response.headers["Allow"] == "POST, OPTIONS"


@pytest.mark.parametrize("path", ["/event/", "/event/x", "/events/1"])
def test_paths_below_the_api_get_its_own_404(client, made, path: str):
    response = client.post(path, json=EVENT, headers=bearer(made.token))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", ["/eventsx", "/", "/docs/server-events"])
def test_other_paths_go_to_the_pages_app(client, path: str):
    response = client.get(path)
    assert response.status_code in (200, 302, 404)
    assert "Content-Security-Policy" in response.headers  # the pages app's headers


def test_unexpected_error_is_a_logged_500_envelope(app, client, made, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    # Validation fails unexpectedly (the quick path every well-formed event takes).
    monkeypatch.setattr("datalook.ingest.pipeline.quick.validator", broken)
    response = client.post("/event", json=EVENT, headers=bearer(made.token))
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"
    assert "boom" not in response.get_data(as_text=True)
    assert "unhandled error on POST /event" in caplog.text
    monkeypatch.undo()
    assert client.post("/event", json=EVENT, headers=bearer(made.token)).status_code == 204


def test_one_connection_is_held_across_requests(app, client, made):
    held = ingestion_for(app).held
    for _ in range(3):
        assert client.post("/event", json=EVENT, headers=bearer(made.token)).status_code == 204
    first = held.get()
    assert client.post("/event", json=EVENT, headers=bearer(made.token)).status_code == 204
    assert held.get() is first
    assert not first.driver_connection.in_transaction  # released clean after each request


def test_disposing_the_engine_closes_held_connections(app, client, made):
    held = ingestion_for(app).held
    assert client.post("/event", json=EVENT, headers=bearer(made.token)).status_code == 204
    before = held.get()
    raw = before.driver_connection
    with app.app_context():
        db.engine.dispose()
    assert not before.is_valid
    with pytest.raises(sqlite3.ProgrammingError):  # the driver connection itself is closed
        raw.execute("SELECT 1")
    assert client.post("/event", json=EVENT, headers=bearer(made.token)).status_code == 204
    assert held.get() is not before
    assert event_count(app) == 2


def test_connection_is_replaced_after_a_database_error(quick_app):
    app, client, token = quick_app, quick_app.test_client(), create_token(quick_app).token
    held = ingestion_for(app).held
    assert client.post("/event", json=EVENT, headers=bearer(token)).status_code == 204
    before = held.get()
    with app.app_context():
        path = db.engine.url.database
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the database cannot take a write now
    response = client.post("/event", json=EVENT, headers=bearer(token))
    locker.execute("ROLLBACK")
    locker.close()
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    assert not before.is_valid  # given up, not reused
    assert client.post("/event", json=EVENT, headers=bearer(token)).status_code == 204
    assert held.get() is not before
    assert event_count(app) == 2


def test_invalidated_connection_is_replaced(app, client, made):
    held = ingestion_for(app).held
    assert client.post("/event", json=EVENT, headers=bearer(made.token)).status_code == 204
    before = held.get()
    before.invalidate()  # e.g. the pool's own error handling
    assert client.post("/event", json=EVENT, headers=bearer(made.token)).status_code == 204
    assert held.get() is not before


def test_event_id_index_is_partial(app):
    with app.app_context():
        (definition,) = db.session.execute(
            db.text("SELECT sql FROM sqlite_master WHERE name = 'uq_events_site_event_id'")
        ).one()
    assert "UNIQUE" in definition and "WHERE event_id IS NOT NULL" in definition


def test_failing_rate_limit_storage_lets_events_through_and_logs_once(
    app, client, made, monkeypatch, caplog
):
    from datalook.ratelimit import rules
    from datalook.ratelimit.mapped import WindowTableFull

    def full(*_args, **_kwargs):
        raise WindowTableFull("no free slot")

    monkeypatch.setattr(rules, "_failure_logged_at", [-rules._FAILURE_LOG_INTERVAL])
    # The storage that holds the keys' windows (on the embedded default, a table of its own).
    monkeypatch.setattr(ingestion_for(app).limits.key_storage, "acquire_entry", full)
    answers = [client.post("/event", json=EVENT, headers=bearer(made.token)) for _ in range(5)]
    assert [answer.status_code for answer in answers] == [204] * 5
    assert "X-RateLimit-Limit" not in answers[0].headers  # no decision, so no limit to show
    assert caplog.text.count("RATE LIMITING DISABLED") == 1
    assert event_count(app) == 5


@pytest.mark.parametrize(
    ("forwarded", "hops"),
    [
        (None, 1),
        ("203.0.113.7", 1),
        ("198.51.100.9, 203.0.113.7", 1),
        ("198.51.100.9, 203.0.113.7", 2),
        ("203.0.113.7", 2),  # fewer entries than hops: the peer's own address
        ("198.51.100.9,203.0.113.7 , 192.0.2.1", 3),
        ("203.0.113.7", 0),
    ],
)
def test_the_backends_client_address_is_the_one_proxyfix_gives(forwarded, hops):
    environ = {"REMOTE_ADDR": "127.0.0.1"}
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    seen = {}

    def peek(environ, start_response):
        seen["address"] = environ["REMOTE_ADDR"]
        return []

    ProxyFix(peek, x_for=hops)(dict(environ), lambda *a: None)
    assert client_address(environ, hops) == seen["address"]
