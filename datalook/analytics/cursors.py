"""Cursors over events.id for tables derived from the events, and their catch-up.

``derive_in_two_phases`` reads and computes outside any write transaction (a WAL reader
blocks nobody), then takes the writers' lock only to store the result, and only if the
cursor is exactly as it was read (its position and its ``updated_at``, which every
catch-up, every erasure and every retirement of a funnel derivation moves); otherwise it
starts over. So two processes never store the same events twice, and on SQLite no event
writer waits while a derivation computes.

On SQLite ids become visible in order. A PostgreSQL sequence hands out ids before their
transactions commit, so a gap may still fill: a gap is skipped only once the event after it
was received more than GAP_GRACE ago (a gap that old is a rolled-back insert).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ..models import Event, utcnow
from ..sql.connections import write_lock
from .funnels.models import DerivedCursor

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


def invalidate(session: Session) -> None:
    """Make every derivation computed before now start over (inside the caller's transaction:
    an erasure deletes the rows it would otherwise store)."""
    session.execute(update(DerivedCursor).values(updated_at=utcnow()))


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
