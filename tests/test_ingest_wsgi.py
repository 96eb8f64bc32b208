"""The ingestion API's own WSGI entry and its held connections.

POST /event and /events are answered in front of Flask (ingest_wsgi); the blueprint's routes
stay in the URL map. Both paths must give the same answers, every other method still gets
Flask's 405, and the connection each worker thread holds must never outlive a database
error or the engine.
"""

from __future__ import annotations

import sqlite3

import pytest

from datalook.blueprints.events_api import ingestion_for
from datalook.extensions import db
from datalook.ingest_wsgi import IngestionEndpoints
from tests.factories import bearer, create_token, event_count

EVENT = {"event_name": "click", "page_path": "/pricing", "properties": {"email": "a@b.c"}}
BATCH = {"events": [EVENT, {"event_name": "nope"}]}


@pytest.fixture
def made(app):
    """A user, a site and a key (its limit raised), with the token."""
    return create_token(app)


def _answers(client, token: str) -> list:
    """The same requests along one path: stored, duplicate, invalid, batch, bad token."""
    headers = bearer(token)
    return [
        client.post("/event", json=EVENT, headers=headers),
        client.post("/event", json={**EVENT, "event_id": "e-1"}, headers=headers),
        client.post("/event", json={**EVENT, "event_id": "e-1"}, headers=headers),
        client.post("/event", json={"event_name": "nope"}, headers=headers),
        client.post("/events", json=BATCH, headers=headers),
        client.post("/event", json=EVENT, headers=bearer(token[:-1] + "x")),
    ]


def _shape(response) -> tuple:
    """What a client can see of an answer, minus the values that move with time."""
    moving = {"X-RateLimit-Remaining", "X-RateLimit-Reset", "RateLimit", "Date"}
    headers = sorted(
        (name, "" if name in moving else value)
        for name, value in response.headers.items()
        if name != "Content-Length"
    )
    return response.status_code, headers, response.get_json(silent=True)


def test_fallback_routes_answer_exactly_like_the_wsgi_entry(make_app):
    fast, plain = make_app(), make_app()
    assert isinstance(plain.wsgi_app, IngestionEndpoints)
    plain.wsgi_app = plain.wsgi_app.wrapped  # served as a plain Flask app
    by_entry = _answers(fast.test_client(), create_token(fast).token)
    by_route = _answers(plain.test_client(), create_token(plain).token)
    assert [r.status_code for r in by_entry] == [204, 204, 204, 400, 200, 401]
    assert [_shape(r) for r in by_entry] == [_shape(r) for r in by_route]
    stored = by_entry[0]
    assert "Content-Type" not in stored.headers and stored.data == b""
    assert stored.headers["X-Content-Type-Options"] == "nosniff"
    assert stored.headers["DataLook-Stripped-Keys"] == "email"
    assert by_entry[2].headers["DataLook-Duplicate"] == "true"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/event", "/events"])
def test_other_methods_still_get_flasks_405(client, method: str, path: str):
    response = client.open(path, method=method)
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


def test_unexpected_error_is_a_logged_500_envelope(app, client, made, monkeypatch, caplog):
    def broken(*_args, **_kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("datalook.blueprints.events_api.event_schema.validate", broken)
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
    from datalook import ratelimits
    from datalook.mapped_window import WindowTableFull

    def full(*_args, **_kwargs):
        raise WindowTableFull("no free slot")

    monkeypatch.setattr(ratelimits, "_failure_logged_at", [-ratelimits._FAILURE_LOG_INTERVAL])
    # The storage that holds the keys' windows (on the embedded default, a table of its own).
    monkeypatch.setattr(ratelimits.event_storage(), "acquire_entry", full)
    answers = [client.post("/event", json=EVENT, headers=bearer(made.token)) for _ in range(5)]
    assert [answer.status_code for answer in answers] == [204] * 5
    assert "X-RateLimit-Limit" not in answers[0].headers  # no decision, so no limit to show
    assert caplog.text.count("RATE LIMITING DISABLED") == 1
    assert event_count(app) == 5
