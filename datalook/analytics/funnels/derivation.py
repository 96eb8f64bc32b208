"""A saved funnel's derivations: started, derived from the events, retired, purged."""

# A saved funnel's derived rows (its matched events, attempts and excluded counts) belong to
# a derivation (FunnelDerivation), not to the funnel itself. Saving a funnel starts its
# first derivation; editing its steps, window or mode, or a change of the site's time zone,
# retires the current one and starts another; deleting the funnel retires it. Each of these
# is one small write: a retired derivation is never read again (reports and catch-ups only
# follow the current one, and retiring moves its cursor's version, so a derivation computed
# before it stores nothing), and its rows are deleted afterwards by `purge_retired`, a few
# thousand rows per short transaction under the writers' lock, from the fold process's tick
# and `flask funnels catch-up`. The derivation row and its cursor go last.
#
# The rows are derived in two phases, as the sessions are: each batch of events is computed
# from reads alone, outside any write transaction (changes.derive_changes), then stored in
# a short one under the writers' lock if the derivation's cursor did not move meanwhile
# (else it is computed again). The fold process derives them (analytics.catch_up); a report
# derives the last few events itself only through read_catch_up.catch_up_for_read. A
# derivation far behind (a first one on a large site) is first staged from the columnar copy
# of the settled events in one pass and swapped in (staging.catch_up_funnel, which the fold
# process and `flask funnels catch-up` call); batches take it from there.
#
# On PostgreSQL, whoever changes which derivation is current locks the funnel's row first,
# so that two edits (or an edit and a delete) never leave two current derivations or one
# without its funnel.

from __future__ import annotations

import json
import time
from typing import NamedTuple

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.orm import Session

from ...models import Event, Site, utcnow
from ...sql.connections import write_lock
from .. import cursors
from ..ranges import site_zone
from .changes import FunnelChanges, Superseded, derive_changes, store_changes
from .definition import FunnelDefinition
from .models import (
    DerivedCursor,
    Funnel,
    FunnelAttempt,
    FunnelDerivation,
    FunnelEvent,
    FunnelExcluded,
)

# Events per derivation batch. Only storing a batch holds the writers' lock (computing it
# does not), and storing costs about as much as computing: on a 1M-event site a batch of
# 5,000 events (about 1,900 rows written) held it 50 to 90 ms at the median, about 0.2 s
# at the 90th percentile; 20,000 held it 0.25 s at the median, and derived the site only
# a fifth faster (33 against 41 µs per event). Event writers wait at most 2 s.
DERIVE_BATCH = 5_000

# Rows deleted per purge transaction. Each deleted row also leaves its indexes (the
# attempts' covering index holds 20 columns), so a few thousand keep the writers' lock
# to some tens of milliseconds.
PURGE_ROWS = 5_000


class Current(NamedTuple):
    """A funnel's current derivation: its id, the zone of its days and the funnel's
    definition (JSON) it derives."""

    id: int
    days_tz: str | None
    definition: str


def cursor_name(derivation_id: int) -> str:
    """The cursor of a derivation's rows."""
    return f"funnel_derivation:{derivation_id}"


def writers_lock(session: Session):
    """The writers' lock of the session's database (see sql.connections.write_lock)."""
    engine = session.get_bind().engine  # the bind is an Engine here; .engine says so to mypy
    return write_lock(engine.dialect, engine.url.database)


def _current_row(session: Session, funnel_id: int):
    """(site zone, derivation id, its zone, the definition) of a funnel; derivation id
    None when it has no current derivation; None when the funnel does not exist."""
    return session.execute(
        select(Site.timezone, FunnelDerivation.id, FunnelDerivation.days_tz, Funnel.definition)
        .select_from(Funnel)
        .join(Site, Site.id == Funnel.site_id)
        .outerjoin(
            FunnelDerivation,
            and_(FunnelDerivation.funnel_id == Funnel.id, FunnelDerivation.retired_at.is_(None)),
        )
        .where(Funnel.id == funnel_id)
    ).one_or_none()


def current(session: Session, funnel_id: int) -> Current | None:
    """The funnel's current derivation as it is (reads only); None if it has none."""
    row = _current_row(session, funnel_id)
    if row is None or row[1] is None:
        return None
    return Current(row[1], row[2], row[3])


def start(session: Session, funnel_id: int, site_id: int, days_tz: str) -> int:
    """Start a derivation of the funnel, with its cursor at the first event (in the caller's
    transaction, which must have retired any other)."""
    derivation = FunnelDerivation(
        site_id=site_id, funnel_id=funnel_id, days_tz=days_tz, created_at=utcnow()
    )
    session.add(derivation)
    session.flush()
    session.add(
        DerivedCursor(name=cursor_name(derivation.id), last_event_id=0, updated_at=utcnow())
    )
    session.flush()
    return derivation.id


def retire(session: Session, funnel_id: int) -> None:
    """Retire the funnel's current derivation (in the caller's transaction): nothing reads
    or stores its rows any more; purge_retired deletes them."""
    ids = session.scalars(
        select(FunnelDerivation.id).where(
            FunnelDerivation.funnel_id == funnel_id, FunnelDerivation.retired_at.is_(None)
        )
    ).all()
    if not ids:
        return
    session.execute(
        update(FunnelDerivation).where(FunnelDerivation.id.in_(ids)).values(retired_at=utcnow())
    )
    for derivation_id in ids:
        # A catch-up that computed a batch before now finds its cursor moved: it stores
        # nothing, looks again and finds the derivation retired.
        cursors.touch(session, cursor_name(derivation_id))


def lock_funnel(session: Session, funnel_id: int) -> Funnel | None:
    """Lock the funnel's row for this transaction (PostgreSQL; SQLite's writers' lock
    already serialises) and return it fresh; None if it is gone."""
    return session.scalars(
        select(Funnel)
        .where(Funnel.id == funnel_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()


def site_days_zone(session: Session, site_id: int) -> str:
    """The zone that really cuts the site's days: UTC when this server does not know the
    stored name, as in every report."""
    return site_zone(session.scalar(select(Site.timezone).where(Site.id == site_id))).key


def follow_site_zone(session: Session, funnel_id: int) -> Current | None:
    """The funnel's current derivation, in the zone that cuts the site's days now.

    When the site's zone changed, the funnel is derived again: its kept attempts were the
    best of other days than the ranges now ask for. So a new derivation starts and the old
    one is retired (a small write, committed). A derivation made before zones were kept
    (None) only starts keeping one attempt per day. None when the funnel is gone.
    """
    row = _current_row(session, funnel_id)
    if row is None:
        return None
    site_tz = site_zone(row[0]).key
    if row[1] is not None and row[2] == site_tz:
        return Current(row[1], site_tz, row[3])
    session.rollback()  # begin the write inside the writers' lock
    with writers_lock(session):
        funnel = lock_funnel(session, funnel_id)
        if funnel is None:
            session.rollback()
            return None
        site_tz = site_days_zone(session, funnel.site_id)  # as it is now
        found = current(session, funnel_id)
        if found is not None and found.days_tz is None:
            session.execute(
                update(FunnelDerivation)
                .where(FunnelDerivation.id == found.id)
                .values(days_tz=site_tz)
            )
            cursors.touch(session, cursor_name(found.id))
            derivation_id = found.id
        elif found is not None and found.days_tz == site_tz:  # another process came first
            derivation_id = found.id
        else:
            retire(session, funnel_id)
            derivation_id = start(session, funnel_id, funnel.site_id, site_tz)
        definition = funnel.definition
        session.commit()
    return Current(derivation_id, site_tz, definition)


def position(session: Session, derivation_id: int) -> int:
    """The last event id the derivation has taken (0 before the first)."""
    found = session.scalar(
        select(DerivedCursor.last_event_id).where(DerivedCursor.name == cursor_name(derivation_id))
    )
    return int(found or 0)


def backlog(session: Session, derivation_id: int) -> int:
    """How many event ids the derivation's cursor is behind the newest event."""
    newest = session.scalar(select(func.max(Event.id))) or 0
    return max(0, newest - position(session, derivation_id))


def is_current(session: Session, derivation_id: int) -> bool:
    """Whether the derivation is still its funnel's current one."""
    return (
        session.scalar(
            select(func.count())
            .select_from(FunnelDerivation)
            .where(FunnelDerivation.id == derivation_id, FunnelDerivation.retired_at.is_(None))
        )
        == 1
    )


_DERIVED = (
    (FunnelEvent, FunnelEvent.event_id),
    (FunnelAttempt, FunnelAttempt.start_event_id),
    (FunnelExcluded, FunnelExcluded.id),
)


def purge_retired(session: Session, seconds: float | None = None) -> int:
    """Delete the rows of retired derivations, PURGE_ROWS per short transaction under the
    writers' lock, then each derivation and its cursor. With `seconds`, stops after the
    first transaction that ends past that many seconds (the rest is for the next call).
    Returns how many derived rows were deleted."""
    deadline = None if seconds is None else time.monotonic() + seconds
    purged = 0
    while True:
        derivation_id = session.scalar(
            select(FunnelDerivation.id)
            .where(FunnelDerivation.retired_at.is_not(None))
            .order_by(FunnelDerivation.id)
            .limit(1)
        )
        session.rollback()  # begin the write inside the writers' lock
        if derivation_id is None:
            return purged
        with writers_lock(session):
            purged += _purge_batch(session, derivation_id)
            session.commit()
        if deadline is not None and time.monotonic() >= deadline:
            return purged


def _purge_batch(session: Session, derivation_id: int) -> int:
    """Delete up to PURGE_ROWS rows of a retired derivation; when none are left, the
    derivation and its cursor too. Returns the rows deleted."""
    left = PURGE_ROWS
    for table, key in _DERIVED:
        doomed = select(key).where(table.derivation_id == derivation_id).limit(left)
        result = session.execute(
            delete(table).where(table.derivation_id == derivation_id, key.in_(doomed))
        )
        left -= result.rowcount  # type: ignore[attr-defined]
        if left <= 0:
            return PURGE_ROWS
    # Empty now (no derivation stores into a retired one): its cascade deletes nothing.
    session.execute(delete(DerivedCursor).where(DerivedCursor.name == cursor_name(derivation_id)))
    session.execute(delete(FunnelDerivation).where(FunnelDerivation.id == derivation_id))
    return PURGE_ROWS - left


def catch_up(session: Session, funnel: Funnel, definition: FunnelDefinition | None = None) -> int:
    """Bring a saved funnel's current derivation up to the newest safe event.

    `definition` is not needed: a derivation follows the funnel's stored definition.
    Returns the events passed over.
    """
    return catch_up_funnel(session, funnel.id)


def catch_up_funnel(session: Session, funnel_id: int, seconds: float | None = None) -> int:
    """Bring a saved funnel's current derivation up to the newest safe event, or stop at
    the first batch past `seconds` (cursors.derive_in_two_phases).

    Follows the site's zone first (a changed zone starts a new derivation). Returns the
    events passed over (0 when the funnel is gone)."""
    found = follow_site_zone(session, funnel_id)
    if found is None or found.days_tz is None:  # gone (follow_site_zone sets every zone)
        return 0
    return catch_up_derivation(session, found.id, found.days_tz, seconds)


def catch_up_derivation(
    session: Session,
    derivation_id: int,
    tz_name: str,
    seconds: float | None = None,
    deadline: float | None = None,
) -> int:
    """Derive a derivation's rows from the events after its cursor, in two phases.

    Each batch is computed outside any write transaction (`derive_changes`) and stored in
    a short one under the writers' lock (`store_changes`), only if its cursor did not move
    meanwhile: another catch-up, an erasure, a retirement or a zone change moves it, and
    the batch is computed again (or, the derivation retired, not at all). `seconds` and
    `deadline` bound it as in cursors.derive_in_two_phases.
    """

    def derive(tx: Session, after_id: int, up_to_id: int) -> FunnelChanges:
        """The changes of the events (after_id, up_to_id] (reads only)."""
        return derive_changes(tx, derivation_id, tz_name, after_id, up_to_id)

    try:
        return cursors.derive_in_two_phases(
            session,
            cursor_name(derivation_id),
            derive,
            store_changes,
            batch=DERIVE_BATCH,
            seconds=seconds,
            create=False,
            deadline=deadline,
        )
    except Superseded:
        session.rollback()
        return 0


def rederive_site(session: Session, site_id: int) -> int:
    """Derive every saved funnel of the site again from its events: the repair of
    `flask analytics rebuild`.

    One small write retires each funnel's derivation and starts another, as an edit does
    (reports read the events while the new one is far behind); each new one is then
    derived up to the newest event and the retired rows are purged, in the usual short
    transactions. Returns the events passed over (strict funnels derive nothing).
    """
    session.rollback()  # begin the write inside the writers' lock
    with writers_lock(session):
        days_tz = site_days_zone(session, site_id)
        funnels = session.execute(
            select(Funnel.id, Funnel.definition).where(Funnel.site_id == site_id)
        ).all()
        for funnel_id, _ in funnels:
            if lock_funnel(session, funnel_id) is not None:
                retire(session, funnel_id)
                start(session, funnel_id, site_id, days_tz)
        session.commit()
    passed = sum(
        catch_up_funnel(session, funnel_id)
        for funnel_id, text in funnels
        if json.loads(text).get("mode") != "strict"
    )
    purge_retired(session)
    return passed
