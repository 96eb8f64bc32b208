"""A write's busy timeout: what is left of its budget, in steps, set only when it changes.

SQLite's own wait of a budgeted write never outlasts what the writers' lock left of the
budget (SQLITE_BUSY_TIMEOUT_MS), and the PRAGMA that sets it runs only when a request's step
differs from the held connection's, not on every request that waited a millisecond.
"""

from __future__ import annotations

import time

import pytest

from datalook.extensions import db
from datalook.sql import connections
from datalook.sql.connections import HeldConnection, busy_timeout_ms, set_write_deadline

BUDGET_MS = 2000


@pytest.mark.parametrize(
    ("left_s", "budget_s", "expected_ms"),
    [
        (2.0, 2.0, 2000),  # waited nothing: the whole budget
        (2.5, 2.0, 2000),  # never more than the budget
        (1.9995, 2.0, 2000),  # waited under a millisecond (taking the lock): all of it
        (1.9985, 2.0, 1900),  # waited more: one step less
        (1.234, 2.0, 1200),
        (1.2, 2.0, 1200),
        (0.1, 2.0, 100),
        (0.0999, 2.0, 99),  # the last step: exactly what is left
        (0.0004, 2.0, 1),  # at least a millisecond (0 would never wait at all)
        (0.5, 0.01, 10),  # a budget shorter than the steps: whole milliseconds
    ],
)
def test_the_timeout_is_what_is_left_rounded_down_to_a_step(left_s, budget_s, expected_ms):
    assert busy_timeout_ms(left_s, budget_s) == expected_ms


@pytest.mark.parametrize("left_ms", [1, 7, 99, 100, 101, 555, 1000, 1998, 1999, 2000])
def test_the_timeout_never_outlasts_what_is_left_and_loses_at_most_a_step(left_ms):
    given = busy_timeout_ms(left_ms / 1000, BUDGET_MS / 1000)
    assert given <= left_ms + 1  # the millisecond that taking the lock may take
    assert given > left_ms - BUDGET_MS // connections.BUSY_STEPS


def _busy_timeout(connection) -> int:
    """The connection's busy timeout as SQLite has it."""
    cursor = connection.cursor()
    try:
        return cursor.execute("PRAGMA busy_timeout").fetchone()[0]
    finally:
        cursor.close()


def test_a_held_connection_gets_its_step_and_the_pragma_runs_only_when_it_changes(make_app):
    app = make_app(SQLITE_BUSY_TIMEOUT_MS=BUDGET_MS)
    with app.app_context():
        engine = db.engine
    held = HeldConnection(engine)
    connection = held.get()
    pragmas: list[str] = []
    connection.driver_connection.set_trace_callback(
        lambda sql: pragmas.append(sql) if sql.startswith("PRAGMA busy_timeout=") else None
    )

    def write(deadline_in: float | None) -> int:
        """One budgeted write (as storage makes) whose request has this much budget left;
        the busy timeout it ran with."""
        set_write_deadline(None if deadline_in is None else time.monotonic() + deadline_in)
        try:
            with connections.write_lock(engine.dialect, engine.url.database):
                connection.cursor().execute("CREATE TABLE IF NOT EXISTS t (x)")
                connection.commit()
                return _busy_timeout(connection)
        finally:
            set_write_deadline(None)

    try:
        assert write(1.25) == 1200
        assert write(1.27) == 1200  # the same step: no PRAGMA
        assert write(0.55) == 500
        assert write(None) == BUDGET_MS  # a request that waited nothing has it all again
        assert write(None) == BUDGET_MS
        assert pragmas == [
            "PRAGMA busy_timeout=1200",
            "PRAGMA busy_timeout=500",
            f"PRAGMA busy_timeout={BUDGET_MS}",
        ]
        # A new connection (after a database error) is set afresh.
        held.discard()
        connection = held.get()
        assert write(1.25) == 1200
    finally:
        held.release()
        held.discard()
