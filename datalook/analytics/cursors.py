"""Cursors over events.id for tables derived from the events, and the lock around catch-up.

``catch_up`` runs each pass in one transaction that first bumps its cursor row: on SQLite
that write takes the database's write lock, on PostgreSQL the row lock, so two processes
never derive the same events twice; the second waits, then reads the moved cursor.

``derive_in_two_phases`` keeps the write short instead: it reads and computes outside any
write transaction (a WAL reader blocks nobody), then takes the writers' lock only to
store the result, and only if the cursor is exactly as it was read (its position and its
``updated_at``, which every catch-up and every erasure moves); otherwise it starts over.
On SQLite, a derivation holding the write lock while it computes would keep every event
writer waiting for as long.

On SQLite ids become visible in order. A PostgreSQL sequence hands out ids before their
transactions commit, so a gap may still fill: a gap is skipped only once the event after it
was received more than GAP_GRACE ago (a gap that old is a rolled-back insert).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import Event, utcnow
from ..sql.connections import write_lock
from .funnel_models import DerivedCursor

GAP_GRACE = timedelta(seconds=5)
Derived = TypeVar("Derived")


def ensure(session: Session, name: str) -> None:
    """Create the cursor at 0 if it does not exist (commits; a racing creator is fine)."""
    if session.get(DerivedCursor, name) is not None:
        return
    session.add(DerivedCursor(name=name, last_event_id=0, updated_at=utcnow()))
    try:
        session.commit()
    except IntegrityError:  # another process created it first
        session.rollback()


def lock_and_read(session: Session, name: str) -> int:
    """Take the cursor's lock for this transaction and return its position."""
    session.execute(
        update(DerivedCursor).where(DerivedCursor.name == name).values(updated_at=utcnow())
    )
    session.expire_all()
    return (
        session.scalar(select(DerivedCursor.last_event_id).where(DerivedCursor.name == name)) or 0
    )


def move(session: Session, name: str, last_event_id: int) -> None:
    """Record how far the derived table has read (inside the locked transaction)."""
    session.execute(
        update(DerivedCursor)
        .where(DerivedCursor.name == name)
        .values(last_event_id=last_event_id, updated_at=utcnow())
    )


def invalidate(session: Session) -> None:
    """Make every derivation computed before now start over (inside the caller's transaction:
    an erasure deletes the rows it would otherwise store)."""
    session.execute(update(DerivedCursor).values(updated_at=utcnow()))


def reset(session: Session, name: str) -> None:
    """Forget a cursor (its derived rows are about to be rebuilt or are gone)."""
    session.execute(update(DerivedCursor).where(DerivedCursor.name == name).values(last_event_id=0))


def touch(session: Session, name: str) -> None:
    """Make a derivation of this cursor computed before now start over (in the caller's
    transaction: its derived rows or their meaning change there)."""
    session.execute(
        update(DerivedCursor).where(DerivedCursor.name == name).values(updated_at=utcnow())
    )


def safe_prefix(
    cursor: int,
    rows: Sequence[tuple[int, datetime]],
    now: datetime,
    ids_may_commit_out_of_order: bool,
) -> int:
    """How many of `rows` (id, received_at; ids ascending, all > cursor) may be taken now.

    Stops before the first gap in the ids whose next event is younger than GAP_GRACE, when
    ids may still commit out of order (PostgreSQL); otherwise every row is safe.
    """
    if not ids_may_commit_out_of_order:
        return len(rows)
    expected = cursor + 1
    for taken, (event_id, received_at) in enumerate(rows):
        if event_id != expected and received_at > now - GAP_GRACE:
            return taken
        expected = event_id + 1
    return len(rows)


def out_of_order_ids(session: Session) -> bool:
    """Whether this database's ids may commit out of order (anything but SQLite)."""
    return session.get_bind().dialect.name != "sqlite"


BATCH = 20_000


def catch_up(
    session: Session,
    name: str,
    apply: Callable[[Session, int, int], None],
    batch: int = BATCH,
) -> int:
    """Feed the events after the cursor to `apply(session, after_id, up_to_id)` in batches.

    Each batch is one locked transaction: read the cursor, find how far is safe, derive,
    move the cursor, commit. It holds the writers' lock throughout (event writers queue
    for it in the kernel rather than sleeping in SQLite's busy handler), so `batch` bounds
    how long they wait. Returns how many events were passed over.
    """
    ensure(session, name)
    newest = session.scalar(select(func.max(Event.id))) or 0
    position = (
        session.scalar(select(DerivedCursor.last_event_id).where(DerivedCursor.name == name)) or 0
    )
    session.commit()
    if position >= newest:  # nothing new: no lock, no write
        return 0
    engine = session.get_bind().engine
    passed = 0
    while True:
        with write_lock(engine.dialect, engine.url.database):
            cursor = lock_and_read(session, name)
            take, horizon, full = _next_batch(session, cursor, batch)
            if take == 0:
                session.commit()
                return passed
            apply(session, cursor, horizon)
            move(session, name, horizon)
            session.commit()
        passed += take
        if not full:
            return passed


def _next_batch(session: Session, after: int, batch: int) -> tuple[int, int, bool]:
    """The next batch after `after`: how many events may be taken now, the last id taken,
    and whether more may follow (the batch was full and all of it was taken)."""
    ids = session.execute(
        select(Event.id, Event.received_at).where(Event.id > after).order_by(Event.id).limit(batch)
    ).all()
    take = safe_prefix(after, ids, utcnow(), out_of_order_ids(session))
    horizon = ids[take - 1][0] if take else after
    return take, horizon, take == len(ids) == batch


def _read_position(session: Session, name: str) -> tuple[int, datetime] | None:
    """The cursor's position and its version (``updated_at``), without locking it; None
    when there is no such cursor (any more)."""
    row = session.execute(
        select(DerivedCursor.last_event_id, DerivedCursor.updated_at).where(
            DerivedCursor.name == name
        )
    ).one_or_none()
    return None if row is None else (int(row[0]), row[1])


def _claim(session: Session, name: str, position: int, version: datetime, to: int) -> bool:
    """Move the cursor to `to` if it is still at (position, version); locks its row."""
    result = session.execute(
        update(DerivedCursor)
        .where(
            DerivedCursor.name == name,
            DerivedCursor.last_event_id == position,
            DerivedCursor.updated_at == version,
        )
        .values(last_event_id=to, updated_at=utcnow())
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def derive_in_two_phases(
    session: Session,
    name: str,
    derive: Callable[[Session, int, int], Derived],
    store: Callable[[Session, Derived], None],
    batch: int | None = None,
    seconds: float | None = None,
    create: bool = True,
) -> int:
    """Feed the events after the cursor to `derive` in batches, storing each result briefly.

    ``derive(session, after_id, up_to_id)`` only reads and returns what to write;
    ``store(session, result)`` writes it, inside a short transaction under the writers'
    lock that also moves the cursor, if nobody moved it meanwhile (else the batch is
    derived again). Batches of `batch` events (BATCH by default). With `seconds`, stops
    after the first stored batch that ends past that many seconds (the rest is for the next
    call); without, goes on to the newest safe event. `create=False`: a cursor that does
    not exist (any more) is not made; nothing is derived. Returns how many events were
    passed over.
    """
    if create:
        ensure(session, name)
    engine = session.get_bind().engine  # the bind is an Engine here; .engine says so to mypy
    deadline = None if seconds is None else time.monotonic() + seconds
    passed = 0
    while True:
        found = _read_position(session, name)
        if found is None:  # gone with what it derived
            session.rollback()
            return passed
        position, version = found
        take, horizon, full = _next_batch(session, position, batch or BATCH)
        if take == 0:
            session.rollback()
            return passed
        result = derive(session, position, horizon)
        session.rollback()  # end the read snapshot before writing
        with write_lock(engine.dialect, engine.url.database):
            if not _claim(session, name, position, version, horizon):
                session.rollback()
                continue  # another catch-up or an erasure came first: read again
            store(session, result)
            session.commit()
        passed += take
        if not full or (deadline is not None and time.monotonic() >= deadline):
            return passed
