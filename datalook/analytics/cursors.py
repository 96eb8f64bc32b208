"""Cursors over events.id for the tables derived from the events: one protocol for all.

Every table derived from the events (the report rollups, the kind index, the sessions, the
saved funnels' rows) keeps a cursor: a named row of a cursor table holding the last event
id it has taken and a version. Each follows the same protocol (``CursorTable``):

1. read the cursor's Position (its last event id and its version), and read and compute
   from the events after it outside any write transaction (a WAL reader blocks nobody);
2. store the result in a short transaction, under the writers' lock, that claims the
   cursor (``claim``): moves it, and its version, only if it is still exactly at the
   Position read; a writer that finds it moved rolls back and starts over. So two
   processes never store the same events twice, and on SQLite no event writer waits while
   a derivation computes;
3. whatever changes what a computation begun earlier would store (an erasure, a retired
   funnel derivation, a rebuild) moves the version too (``bump``, or a claim that does not
   move the position), so that computation starts over.

The version is the rollups' integer `version` (analytics_cursor, which counts every move),
or, in derived_cursors, `updated_at` (the time of the last move).

Ids and commit order (``safe_prefix``): on SQLite ids become visible in order. A
PostgreSQL sequence hands out ids before their transactions commit, so a gap may still
fill: a gap is stepped over only once the event after it was received more than GAP_GRACE
ago (a gap that old is a rolled-back insert, or a duplicate skipped by ON CONFLICT), or,
for a caller that asks (``settled_id``), at once when it lies below an id that no open
transaction can still commit.

``derive_in_two_phases`` runs the protocol batch by batch on the ORM session (kinds,
sessions, funnels); the rollups' fold (analytics.rollups.fold) runs it on connections of
its own, reading the event rows in the same snapshot as the cursor.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import Event, utcnow
from ..sql.connections import write_lock
from .funnels.models import DerivedCursor
from .rollups.models import SummaryCursor

GAP_GRACE = timedelta(seconds=5)
BATCH = 20_000
# Under a deadline (a report's budget) batches start this small and are then sized to the
# time left at the pace measured, between these bounds: a batch of 20,000 events took the
# sessions 4.5 s on a busy machine, far past a budget of half a second.
FIRST_TIMED_BATCH = 500
SMALLEST_TIMED_BATCH = 100
Derived = TypeVar("Derived")


class Position(NamedTuple):
    """Where a cursor stood when it was read."""

    last_event_id: int
    version: Any  # an int (a counter) or a datetime (the last move): see CursorTable


class CursorTable:
    """A table of named cursors (name, last_event_id, updated_at) and the claims on them.

    `counter`: the table counts every move in an integer `version` column (and also
    stamps `updated_at`); without, `updated_at` itself is the version. `bind` below is a
    Session or a Connection: the claim and the bump run in its transaction.
    """

    def __init__(self, model: Any, counter: bool = False) -> None:
        self.model = model
        self.counter = counter
        self.version = model.version if counter else model.updated_at

    def ensure(self, session: Session, name: str) -> None:
        """Create the cursor at 0 if it does not exist (commits; a racing creator is fine)."""
        if session.get(self.model, name) is not None:
            return
        session.add(self.model(name=name, last_event_id=0, updated_at=utcnow()))
        try:
            session.commit()
        except IntegrityError:  # another process created it first
            session.rollback()

    def _select(self, name: str):
        """The position and version of one cursor."""
        return select(self.model.last_event_id, self.version).where(self.model.name == name)

    def _position(self, row) -> Position:
        """A selected row as a Position."""
        return Position(int(row[0]), int(row[1]) if self.counter else row[1])

    def read(self, bind, name: str) -> Position | None:
        """The cursor's position, without locking it; None when there is no such cursor
        (any more)."""
        row = bind.execute(self._select(name)).one_or_none()
        return None if row is None else self._position(row)

    def read_existing(self, bind, name: str) -> Position:
        """The position of a cursor that must exist (NoResultFound otherwise)."""
        return self._position(bind.execute(self._select(name)).one())

    def claim(self, bind, name: str, seen: Position, to: int | None = None) -> bool:
        """Move the cursor to `to` (None: leave the position) and its version on, if it is
        still at `seen`; whether it was. Locks its row until the transaction ends."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        if self.counter:
            values["version"] = seen.version + 1
        if to is not None:
            values["last_event_id"] = to
        result = bind.execute(
            update(self.model)
            .where(
                self.model.name == name,
                self.model.last_event_id == seen.last_event_id,
                self.version == seen.version,
            )
            .values(**values)
        )
        return result.rowcount == 1

    def bump(self, bind, name: str | None = None) -> None:
        """Move the version of one cursor (None: of every cursor of the table) on, wherever
        it stands: a computation that read it before starts over."""
        values: dict[str, Any] = {"updated_at": utcnow()}
        if self.counter:
            values["version"] = self.model.version + 1
        statement = update(self.model)
        if name is not None:
            statement = statement.where(self.model.name == name)
        bind.execute(statement.values(**values))


# The cursors of the kind index, the sessions and the saved funnels' derivations.
DERIVED = CursorTable(DerivedCursor)


def ensure(session: Session, name: str) -> None:
    """Create the derived cursor at 0 if it does not exist (commits)."""
    DERIVED.ensure(session, name)


def invalidate(session: Session) -> None:
    """Make every derivation computed before now start over (inside the caller's transaction:
    an erasure deletes the rows it would otherwise store)."""
    DERIVED.bump(session)


def hold(session: Session, name: str) -> int:
    """Move a derived cursor's version on and return its position, inside the caller's
    write transaction (under the writers' lock): what that transaction stores replaces
    what a derivation computed before it, and on PostgreSQL the cursor's row stays locked
    until it ends (a catch-up storing meanwhile waits, then finds the cursor moved). The
    cursor must exist (``ensure``)."""
    DERIVED.bump(session, name)
    return int(DERIVED.read_existing(session, name).last_event_id)


def rewind_past_deleted(session: Session) -> None:
    """After events were deleted (in the deleting transaction): no cursor may stand past
    the newest event left.

    SQLite gives a new row the largest id + 1 (events.id has no AUTOINCREMENT), so once
    the newest events are deleted (test events cleared, the latest visitor erased, a
    cut-off after every event) their ids are given again; a cursor left past them would
    never read the events that take them. Lowering it loses nothing: no event is left
    between the newest one and where it stood. A PostgreSQL sequence never gives an id
    twice.
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    newest = session.scalar(select(func.max(Event.id))) or 0
    for model in (SummaryCursor, DerivedCursor):
        session.execute(
            update(model).where(model.last_event_id > newest).values(last_event_id=newest)
        )


def touch(session: Session, name: str) -> None:
    """Make a derivation of this cursor computed before now start over (in the caller's
    transaction: its derived rows or their meaning change there)."""
    DERIVED.bump(session, name)


def safe_prefix(
    cursor: int,
    rows: Sequence[Sequence],
    now: datetime,
    ids_may_commit_out_of_order: bool,
    settled_id: int = 0,
    received_at: int = 1,
) -> int:
    """How many of `rows` (ids ascending, all > cursor) may be taken now.

    A row holds its event id first and its received_at at index `received_at`. Stops
    before the first gap in the ids whose next event is younger than GAP_GRACE, when ids
    may still commit out of order (PostgreSQL); otherwise every row is safe. A gap before
    an id up to `settled_id` is final at once (see ``settled_id``).
    """
    if not ids_may_commit_out_of_order:
        return len(rows)
    expected = cursor + 1
    for taken, row in enumerate(rows):
        event_id = row[0]
        if event_id != expected and event_id > settled_id and row[received_at] > now - GAP_GRACE:
            return taken  # an id before this one may still commit
        expected = event_id + 1
    return len(rows)


def out_of_order_ids(session: Session) -> bool:
    """Whether this database's ids may commit out of order (anything but SQLite)."""
    return session.get_bind().dialect.name != "sqlite"


# Write transactions open in this database now (each holds the lock on its own xid).
_OPEN_WRITERS = text(
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted"
    " AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
)
_LAST_ID = text("SELECT last_value FROM events_id_seq")


def settled_id(connection) -> int:
    """PostgreSQL: an id below which every gap is final (0 when that is not known).

    Read the sequence's last value first, then look for open write transactions: if there
    are none, every transaction that took an id up to that value has ended, so a missing
    id is a rolled-back insert or a duplicate that ON CONFLICT skipped. Duplicates leave
    such gaps all the time; without this each would hold a cursor back for GAP_GRACE.
    """
    last = connection.execute(_LAST_ID).scalar() or 0
    if connection.execute(_OPEN_WRITERS).scalar():
        return 0
    return int(last)


def _next_batch(session: Session, after: int, batch: int) -> tuple[int, int, bool]:
    """The next batch after `after`: how many events may be taken now, the last id taken,
    and whether more may follow (the batch was full and all of it was taken)."""
    ids = session.execute(
        select(Event.id, Event.received_at).where(Event.id > after).order_by(Event.id).limit(batch)
    ).all()
    take = safe_prefix(after, ids, utcnow(), out_of_order_ids(session))
    horizon = ids[take - 1][0] if take else after
    return take, horizon, take == len(ids) == batch


def derive_in_two_phases(
    session: Session,
    name: str,
    derive: Callable[[Session, int, int], Derived],
    store: Callable[[Session, Derived], None],
    batch: int | None = None,
    seconds: float | None = None,
    create: bool = True,
    deadline: float | None = None,
) -> int:
    """Feed the events after the cursor to `derive` in batches, storing each result briefly.

    ``derive(session, after_id, up_to_id)`` only reads and returns what to write;
    ``store(session, result)`` writes it, inside a short transaction under the writers'
    lock that also moves the cursor, if nobody moved it meanwhile (else the batch is
    derived again). Batches of `batch` events (BATCH by default). With `seconds`, stops
    after the first stored batch that ends past that many seconds (the rest is for the next
    call); with `deadline` (a time.monotonic() value: a report's budget), begins no batch
    once it has passed, not even the first, and sizes each batch to the time left (at most
    `batch`); without either, goes on to the newest safe event. `create=False`: a cursor
    that does not exist (any more) is not made; nothing is derived. Returns how many events
    were passed over.
    """
    if create:
        ensure(session, name)
    engine = session.get_bind().engine  # the bind is an Engine here; .engine says so to mypy
    stop_after = None if seconds is None else time.monotonic() + seconds
    largest = batch or BATCH
    size = largest if deadline is None else min(largest, FIRST_TIMED_BATCH)
    passed = 0
    while True:
        if deadline is not None and time.monotonic() >= deadline:
            return passed
        started = time.monotonic()
        seen = DERIVED.read(session, name)
        if seen is None:  # gone with what it derived
            session.rollback()
            return passed
        position = seen.last_event_id
        take, horizon, full = _next_batch(session, position, size)
        if take == 0:
            session.rollback()
            return passed
        result = derive(session, position, horizon)
        session.rollback()  # end the read snapshot before writing
        with write_lock(engine.dialect, engine.url.database):
            if not DERIVED.claim(session, name, seen, horizon):
                session.rollback()
                continue  # another catch-up or an erasure came first: read again
            store(session, result)
            session.commit()
        passed += take
        if not full or (stop_after is not None and time.monotonic() >= stop_after):
            return passed
        if deadline is not None:
            size = _fitting(take, time.monotonic() - started, deadline, largest)


def _fitting(taken: int, took: float, deadline: float, largest: int) -> int:
    """The size of the next batch: what fits in the time left before `deadline` at the pace
    of the last one (`taken` events in `took` seconds), within the bounds."""
    per_event = max(took, 1e-6) / taken
    fits = int(max(0.0, deadline - time.monotonic()) / per_event)
    return min(largest, max(SMALLEST_TIMED_BATCH, fits))
