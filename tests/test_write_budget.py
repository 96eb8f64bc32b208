"""SQLITE_BUSY_TIMEOUT_MS is the whole wait of a write: the writers' lock counts against it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest

from datalook.extensions import db
from tests.factories import bearer, create_token, event_count

BUDGET_MS = 2000


def hold_writers_lock(database: str, seconds: float) -> subprocess.Popen:
    """Another process holds the database's writers' lock (a writer stuck ahead) for a while."""
    code = (
        "import sys, time\n"
        "from datalook.sql import filelock\n"
        "with filelock.for_database(sys.argv[1]).hold():\n"
        "    print('held', flush=True)\n"
        "    time.sleep(float(sys.argv[2]))\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, database, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def stop(holder: subprocess.Popen) -> None:
    """End the lock holder."""
    holder.kill()
    holder.wait()
    holder.stdout.close()


@pytest.fixture
def budget_app(make_app):
    """An app whose writes may wait 2 s in all."""
    return make_app(SQLITE_BUSY_TIMEOUT_MS=BUDGET_MS)


def post_event(app, token: str):
    """POST one event; return the response and how long it took."""
    started = time.monotonic()
    response = app.test_client().post(
        "/event", json={"event_name": "custom", "page_path": "/checkout"}, headers=bearer(token)
    )
    return response, time.monotonic() - started


def test_a_writer_stuck_ahead_gives_a_503_within_the_budget(budget_app):
    made = create_token(budget_app)
    with budget_app.app_context():
        database = db.engine.url.database
    holder = hold_writers_lock(database, 4 * BUDGET_MS / 1000)
    try:
        response, seconds = post_event(budget_app, made.token)
    finally:
        stop(holder)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"
    # Before, the request waited for the holder (8 s) and then wrote. The bound is generous:
    # the budget plus half of it for a loaded machine, still far below the holder's time.
    assert seconds < 1.5 * BUDGET_MS / 1000
    assert event_count(budget_app) == 0


def test_waiting_for_the_lock_then_for_a_locked_database_shares_one_budget(budget_app):
    made = create_token(budget_app)
    with budget_app.app_context():
        database = db.engine.url.database
    outsider = sqlite3.connect(database, isolation_level=None)
    outsider.execute("BEGIN EXCLUSIVE")  # SQLite itself is locked for the whole request
    holder = hold_writers_lock(database, 0.75 * BUDGET_MS / 1000)
    try:
        response, seconds = post_event(budget_app, made.token)
    finally:
        stop(holder)
        outsider.execute("ROLLBACK")
        outsider.close()
    assert response.status_code == 503
    # Before: 1.5 s for the lock, then a fresh 2 s for SQLite (3.5 s). Now 2 s in all.
    assert seconds < 1.4 * BUDGET_MS / 1000
    # The held connection has its whole budget again for the next write.
    response, _ = post_event(budget_app, made.token)
    assert response.status_code == 204
