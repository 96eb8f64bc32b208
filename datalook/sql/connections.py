"""Database engine tuning that must hold on every connection, and portable upserts.

No Flask here (the ingestion API uses this module): init_app finds the app's engine through
the app object it is given.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time

from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import filelock
from .wal_checkpoints import AUTOCHECKPOINT_PAGES


def _sqlite_pragmas(synchronous: str, busy_timeout_ms: int):
    """Return a connect hook applying the SQLite settings for many worker processes."""

    def apply(dbapi_connection, _record) -> None:
        """WAL (readers never wait for the writer), a busy timeout, foreign keys."""
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # Wait this long for a competing writer; past it, the ingestion API answers 503.
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # NORMAL in WAL mode: a commit survives any crash or kill of the process; only an
        # operating-system crash or power loss can lose the last commits. FULL closes that
        # gap at the price of an fsync per commit (SQLITE_SYNCHRONOUS=FULL).
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        # Checkpoints run on their own thread (wal_checkpoints), not inside a writer's
        # commit; this far higher threshold only bounds the WAL should that thread stop.
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cursor.close()

    return apply


def init_app(app) -> None:
    """Attach per-connection settings to a Flask app's engine (its Flask-SQLAlchemy's)."""
    with app.app_context():
        engine: Engine = app.extensions["sqlalchemy"].engine
        if engine.dialect.name == "sqlite":
            hook = _sqlite_pragmas(
                app.config["SQLITE_SYNCHRONOUS"], app.config["SQLITE_BUSY_TIMEOUT_MS"]
            )
            event.listen(engine, "connect", hook)
            if engine.url.database:
                _budgets[engine.url.database] = app.config["SQLITE_BUSY_TIMEOUT_MS"] / 1000


def dialect_insert(table, dialect_name: str):
    """Return the dialect's INSERT construct, which knows ON CONFLICT."""
    return pg_insert(table) if dialect_name == "postgresql" else sqlite_insert(table)


def insert_ignoring_conflicts(
    table, index_elements: list[str], dialect_name: str, index_where=None
):
    """INSERT … ON CONFLICT (index_elements) [WHERE …] DO NOTHING, on SQLite and PostgreSQL.

    ``index_where`` names a partial unique index by its predicate.
    """
    return dialect_insert(table, dialect_name).on_conflict_do_nothing(
        index_elements=index_elements, index_where=index_where
    )


def upsert(table, values: dict, index_elements: list[str], set_: dict, dialect_name: str):
    """INSERT … ON CONFLICT (index_elements) DO UPDATE SET …, on both databases."""
    return (
        dialect_insert(table, dialect_name)
        .values(**values)
        .on_conflict_do_update(index_elements=index_elements, set_=set_)
    )


# SQLITE_BUSY_TIMEOUT_MS of each SQLite file (seconds), set by init_app: the whole time a
# write may wait, for the writers' lock and then for SQLite's own lock together.
_budgets: dict[str, float] = {}
# This thread's request deadline (time.monotonic()), if its budget counts from earlier than
# the write: set_write_deadline.
_request = threading.local()


def set_write_deadline(deadline: float | None) -> None:
    """Make this thread's budgeted writes end by `deadline` (time.monotonic()) at the latest,
    until it is set back to None: the ingestion app counts a request's budget from the
    moment its front had the whole request, so the time it waited for a busy worker counts
    too. A deadline already past fails the write at once (filelock.LockTimeout)."""
    _request.deadline = deadline


def write_deadline() -> float | None:
    """This thread's request deadline (set_write_deadline), or None."""
    return getattr(_request, "deadline", None)


def write_lock(dialect: Dialect, database: str | None):
    """Queue SQLite writers in the kernel (see filelock); other databases need nothing.

    Every frequent writer takes it (events, usage counters, the WAL checkpoint's tail): one
    that did not would make the others meet SQLITE_BUSY, whose handler sleeps for
    milliseconds while holding this lock, stalling every writer behind it. The wait for it
    counts against SQLITE_BUSY_TIMEOUT_MS (filelock.LockTimeout past it, a 503 to the
    ingestion API), and this thread's held connection gets only what is left of that budget
    for SQLite's own wait: writers queued behind one that waits for a locked database do not
    each add a full timeout.
    """
    if dialect.name != "sqlite" or not database or database == ":memory:":
        return contextlib.nullcontext()
    budget = _budgets.get(database)
    if budget is None:
        return filelock.for_database(database).hold()
    return _BudgetedWrite(database, budget)


class _BudgetedWrite:
    """The writers' lock within a time budget, and the rest of the budget for SQLite."""

    __slots__ = ("database", "budget", "lock")

    def __init__(self, database: str, budget: float) -> None:
        self.database, self.budget = database, budget
        self.lock = filelock.for_database(database)

    def __enter__(self):
        """Take the lock; give this thread's held connection a busy timeout within what is
        left of the budget (less the time spent waiting here, and before, with a request
        deadline)."""
        started = time.monotonic()
        budget = self.budget
        deadline = getattr(_request, "deadline", None)
        if deadline is not None:
            budget = min(budget, deadline - started)
            if budget <= 0:
                raise filelock.LockTimeout("database is busy (the request waited its budget)")
        self.lock.hold(budget).__enter__()
        left = budget - (time.monotonic() - started)
        try:
            HeldConnection.busy_timeout_here(self.database, busy_timeout_ms(left, self.budget))
        except BaseException:
            self.lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        """Release the lock (the held connection keeps its busy timeout: the next budgeted
        write sets its own, and only when it differs)."""
        self.lock.__exit__(*exc)


# What is left of a write's budget is given to SQLite's own wait rounded down to a step of
# 1/BUSY_STEPS of the whole budget: never longer than what is left, at most one step
# shorter, and the same value for nearly every request, so that the PRAGMA which sets it
# (as much CPU as the event's own INSERT) runs only when the step changes. Set exactly, it
# ran on most requests under load: the front's stamp has millisecond resolution, so
# nearly every request had "waited".
BUSY_STEPS = 20


def busy_timeout_ms(left: float, budget: float) -> int:
    """The busy timeout (ms, at least 1) of a write with `left` of its `budget` seconds."""
    full = int(budget * 1000)
    wanted = int(left * 1000)
    if wanted >= full - 1:  # waited under a millisecond (taking the lock): the whole budget
        return max(1, full)
    step = max(1, full // BUSY_STEPS)
    if wanted < step:  # the last step: exactly what is left
        return max(1, wanted)
    return wanted - wanted % step


def _held_here() -> dict:
    """This thread's held connections (their thread-local state) by database, the last
    taken of each: the write that follows on this thread uses that one."""
    held = _request.__dict__.get("held")
    if held is None:
        held = _request.held = {}
    return held


def _set_busy_timeout(connection, milliseconds: int) -> bool:
    """PRAGMA busy_timeout on a DB-API connection; whether it was set (failures are left to
    the write itself)."""
    try:
        cursor = connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(milliseconds)}")
        cursor.close()
    except Exception:  # noqa: BLE001 - the write that follows meets the same failure
        return False
    return True


# Connections inherited through fork() must be neither used nor closed by the child; parking
# them here keeps garbage collection from closing them under the parent.
_ABANDONED: list = []


class HeldConnection:
    """One DB-API connection per thread, kept checked out of the pool by the ingestion API.

    A checkout and check-in per event cost as much Python as the event's INSERT in the
    profile. Holding the connection is safe because every request leaves it clean: the
    caller ends each request with ``release`` (roll back whatever is still open, which on
    PostgreSQL ends the read transaction of the key lookup) and drops it with ``discard``
    after a database error, so the next request connects afresh. Disposing of the engine
    closes them all (the pool alone would not: they are checked out).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.database = engine.url.database
        self._local = threading.local()
        self._handed_out: list = []
        self._lock = threading.Lock()
        event.listen(engine, "engine_disposed", self._close_all)

    @staticmethod
    def busy_timeout_here(database: str, milliseconds: int) -> None:
        """Give the connection this thread last took (get) for `database`, if any, this busy
        timeout, with a PRAGMA only when the connection does not have it already."""
        local = getattr(_request, "held", {}).get(database)
        if local is None or local.pid != os.getpid():
            return
        connection = local.connection
        if connection is not None and local.busy_ms != milliseconds:
            set_ = _set_busy_timeout(connection, milliseconds)
            local.busy_ms = milliseconds if set_ else None

    def get(self):
        """This thread's connection, connecting on first use (and after fork or discard)."""
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is not None and local.pid == os.getpid() and connection.is_valid:
            if _request.__dict__.get("held", {}).get(self.database) is not local:
                _held_here()[self.database] = local  # another instance took it meanwhile
            return connection
        if connection is not None and local.pid != os.getpid():
            _ABANDONED.append(connection)
        local.connection = None
        connection = self.engine.raw_connection()  # may raise: nothing is held then
        with self._lock:
            self._handed_out.append((os.getpid(), connection))
        # A new connection has the configured timeout from its connect hook; unknown here.
        local.connection, local.pid, local.busy_ms = connection, os.getpid(), None
        _held_here()[self.database] = local  # for write_lock's busy timeout
        return connection

    def release(self) -> None:
        """End the request: roll back anything left open (a no-op when nothing is)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                connection.rollback()
            except Exception:  # a broken connection: the answer is already decided
                self.discard()

    def discard(self) -> None:
        """Drop this thread's connection after a database error; the pool forgets it."""
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            self._invalidate(connection)

    def _invalidate(self, connection) -> None:
        """Close a held connection for good (it may be broken already)."""
        with self._lock:
            self._handed_out = [held for held in self._handed_out if held[1] is not connection]
        _close_quietly(connection)

    def _close_all(self, _engine: Engine) -> None:
        """engine.dispose(): close every held connection; threads reconnect on next use."""
        with self._lock:
            handed_out, self._handed_out = self._handed_out, []
        for pid, connection in handed_out:
            if pid == os.getpid():  # never close a parent's connection after fork
                _close_quietly(connection)


def _close_quietly(connection) -> None:
    """Invalidate a pooled connection; it may be broken already, and forgetting it is the
    point."""
    with contextlib.suppress(Exception):
        connection.invalidate()


def add_unique(session: Session, row: object) -> bool:
    """Add a row and commit; False (the session rolled back) when a unique constraint says
    such a row exists already."""
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return False
    return True
