"""SQLITE_BUSY_TIMEOUT_MS counts from the front's receipt of the whole request.

Behind workers busy waiting for a locked database, a request first queues for a worker;
that wait is part of its budget. The front stamps X-Request-Start, and the app subtracts
the time since then (only behind a trusted front, clamped to the budget).
"""

from __future__ import annotations

import http.client
import json
import sqlite3
import threading
import time

import pytest

from datalook.extensions import db
from datalook.ingest import request_start
from tests.factories import bearer, create_token, event_count
from tests.live import LiveServer
from tests.test_write_budget import hold_writers_lock, stop

NOW = 1_700_000_000.0
BUDGET = 2.0
EVENT = {"event_name": "custom", "page_path": "/checkout"}

STAMPS = [
    ("missing", None, 0.0),
    ("empty", "", 0.0),
    ("garbage", "soon", 0.0),
    ("no value", "t=", 0.0),
    ("not a number", "t=abc", 0.0),
    ("nan", "t=nan", 0.0),
    ("infinity", "t=inf", 0.0),
    ("negative", "t=-5", 0.0),
    ("exponent", "t=1.7e9", 0.0),
    ("no t=", f"{NOW - 1:.3f}", 0.0),
    ("microseconds", "t=1699999999500000", 0.0),
    ("future", f"t={NOW + 30:.3f}", 0.0),
    ("a moment ahead", f"t={NOW + 0.004:.3f}", 0.0),
    ("far past", f"t={NOW - 3600:.3f}", BUDGET),
    ("the epoch", "t=0", BUDGET),
    ("just past the budget", f"t={NOW - BUDGET - 0.001:.3f}", BUDGET),
    ("exact", f"t={NOW - 0.5:.3f}", 0.5),
    ("exactly the budget", f"t={NOW - BUDGET:.3f}", BUDGET),
    ("whole seconds", f"t={NOW - 1:.0f}", 1.0),
    ("surrounding spaces", f"  t={NOW - 1.25:.3f} ", 1.25),
    ("now", f"t={NOW:.3f}", 0.0),
]


@pytest.mark.parametrize(("value", "expected"), [s[1:] for s in STAMPS], ids=[s[0] for s in STAMPS])
def test_the_stamp_is_read_and_clamped_to_the_budget(value, expected):
    assert request_start.waited(value, NOW, BUDGET) == pytest.approx(expected, abs=1e-6)


def test_the_deadline_is_the_budget_less_the_wait():
    environ = {request_start.ENVIRON_KEY: f"t={NOW - 0.75:.3f}"}
    assert request_start.deadline(environ, BUDGET, NOW, 50.0) == pytest.approx(51.25)
    assert request_start.deadline({}, BUDGET, NOW, 50.0) == pytest.approx(52.0)


def _post(app, token: str, stamp: str | None):
    """POST one event, stamped like the front would; the response and how long it took."""
    headers = bearer(token)
    if stamp is not None:
        headers["X-Request-Start"] = stamp
    started = time.monotonic()
    response = app.test_client().post("/event", json=EVENT, headers=headers)
    return response, time.monotonic() - started


def _ago(seconds: float) -> str:
    return f"t={time.time() - seconds:.3f}"


@pytest.fixture
def fronted_app(make_app):
    """An app behind a trusted front, whose writes may wait 2 s in all."""
    return make_app(TRUSTED_PROXIES=1, SQLITE_BUSY_TIMEOUT_MS=int(BUDGET * 1000))


def test_a_request_that_waited_its_budget_is_answered_503_at_once(fronted_app):
    made = create_token(fronted_app)
    response, seconds = _post(fronted_app, made.token, _ago(3600))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    assert response.headers["Retry-After"] == "1"
    assert seconds < 0.5 * BUDGET  # no wait at all, whatever the machine's load
    assert event_count(fronted_app) == 0
    # The next request, stamped just now, has its whole budget again.
    response, _ = _post(fronted_app, made.token, _ago(0.01))
    assert response.status_code == 204
    assert event_count(fronted_app) == 1


def test_the_time_already_waited_is_taken_from_the_budget(fronted_app):
    made = create_token(fronted_app)
    with fronted_app.app_context():
        database = db.engine.url.database
    holder = hold_writers_lock(database, 3 * BUDGET)
    try:
        response, seconds = _post(fronted_app, made.token, _ago(BUDGET - 0.5))
    finally:
        stop(holder)
    assert response.status_code == 503
    # 0.5 s were left (with a second for a loaded machine); before, it waited the whole 2 s.
    assert seconds < 0.5 + 1.0


def test_a_stamp_from_the_future_does_not_lengthen_the_budget(fronted_app):
    made = create_token(fronted_app)
    with fronted_app.app_context():
        database = db.engine.url.database
    holder = hold_writers_lock(database, 3 * BUDGET)
    try:
        response, seconds = _post(fronted_app, made.token, f"t={time.time() + 3600:.3f}")
    finally:
        stop(holder)
    assert response.status_code == 503
    assert seconds < 1.5 * BUDGET


def test_without_a_trusted_front_the_stamp_is_ignored(make_app):
    app = make_app(SQLITE_BUSY_TIMEOUT_MS=int(BUDGET * 1000))  # TRUSTED_PROXIES=0
    made = create_token(app)
    response, _ = _post(app, made.token, _ago(3600))
    assert response.status_code == 204
    assert event_count(app) == 1


# --- the real server: nginx stamps, gunicorn's workers queue ---------------------------------

LIVE_BUDGET = 1.0  # seconds
CLIENTS = 10
TOLERANCE = 1.5  # seconds: a loaded, shared machine


def _send(url: str, token: str, start: threading.Barrier, results: list) -> None:
    """POST one event; record (status, seconds from the request fully sent to the answer)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    body = json.dumps(EVENT)
    headers = {**bearer(token), "Content-Type": "application/json"}
    try:
        connection.connect()
        start.wait()
        connection.request("POST", "/event", body=body, headers=headers)
        sent = time.monotonic()  # the whole request is in the socket: the front has it
        response = connection.getresponse()
        response.read()
        results.append((response.status, time.monotonic() - sent))
    finally:
        connection.close()


def test_every_503_arrives_within_the_budget_behind_busy_workers(tmp_path):
    server = LiveServer(
        tmp_path / "live-instance",
        workers=2,
        extra_env={"SQLITE_BUSY_TIMEOUT_MS": str(int(LIVE_BUDGET * 1000))},
    )
    server.start()
    try:
        token = server.new_token()
        # Another connection holds SQLite's write lock for far longer than the budget.
        outsider = sqlite3.connect(tmp_path / "live-instance" / "datalook.db", timeout=30)
        outsider.isolation_level = None
        outsider.execute("BEGIN IMMEDIATE")
        results: list[tuple[int, float]] = []
        start = threading.Barrier(CLIENTS)
        try:
            clients = [
                threading.Thread(target=_send, args=(server.url, token, start, results))
                for _ in range(CLIENTS)
            ]
            for client in clients:
                client.start()
            for client in clients:
                client.join(timeout=60)
        finally:
            outsider.execute("ROLLBACK")
            outsider.close()
    finally:
        server.stop()
    assert len(results) == CLIENTS
    # Held for the whole test: nothing could be stored, every answer is a 503...
    assert [status for status, _ in results] == [503] * CLIENTS
    # ...and each came within the budget of the front's receipt. Before, the requests queued
    # behind the two busy workers waited a budget per request ahead of them (about 5 s).
    waits = sorted(seconds for _, seconds in results)
    assert waits[-1] < LIVE_BUDGET + TOLERANCE, waits
