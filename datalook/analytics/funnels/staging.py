"""A derivation far behind, derived at once from the columnar copy and swapped in.

Batch by batch (derivation.catch_up_derivation), a first derivation at millions of events
takes many minutes: each batch reads and rewrites the attempts of the days it touches. When
a funnel's current derivation is far behind (STAGE_BACKLOG), the rows of every event up to
the store's cursor (events settled: the store's catch-up stepped over no gap that could
still fill) are computed in one pass from the copy (settled_rows) and written into a
*staged* derivation, one that belongs to no funnel yet (its funnel_id is the funnel's,
negated: nothing that looks for a funnel's derivation finds it, and the unique index of
current derivations lets one stage per funnel). The rows go in many short transactions
under the writers' lock, so no event writer waits long. Then one small write swaps it in:
the funnel's derivation is retired (its rows purged as any retired one's), the staged one
becomes current with its cursor at the events it took, and the catch-up goes on from there.

Exactness follows the cursors' protocol (analytics.cursors): the staged derivation exists,
with its cursor, before the copy is read, so an erasure or an identity link meanwhile
moves that cursor's version (cursors.invalidate) and the next write finds it moved; an
edit, a deletion or a zone change retires the funnel's derivation, which the swap checks.
Either way the staged one is retired instead (and purged): nothing computed before a
change is kept.

A stage holds a lease: while its cursor moved less than LEASE ago, other processes leave
the funnel to it; a stage left by a process that died is retired once its lease is over
(abandon_stale).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...models import utcnow
from ...sql.bulk import copy_rows
from .. import cursors
from ..ranges import zone
from ..store.invalidate import CURSOR as STORE_CURSOR
from . import derivation, settled_rows
from .definition import definition_from_json
from .models import FunnelAttempt, FunnelDerivation, FunnelEvent, FunnelExcluded

# Events behind past which a derivation is staged from the copy instead of derived batch
# by batch (a batch of 5,000 costs about as much as a stage of 100,000 on a 1M-event site).
STAGE_BACKLOG = 100_000
# Rows per write transaction of a stage: a few tens of milliseconds of the writers' lock.
ROWS_PER_WRITE = 10_000
# SQLite's page cache while a stage's rows are written (KiB; the default is 2,000).
WRITE_CACHE_KIB = 128 * 1024
# A stage whose cursor has not moved for this long is taken as left by a dead process.
LEASE = timedelta(minutes=10)


def staged_funnel_id(funnel_id: int) -> int:
    """The funnel_id a staged derivation of the funnel holds until it is swapped in."""
    return -funnel_id


def _staged(session: Session, funnel_id: int):
    """(id, when its cursor last moved) of the funnel's stage, or None."""
    stage_id = session.scalar(
        select(FunnelDerivation.id).where(
            FunnelDerivation.funnel_id == staged_funnel_id(funnel_id),
            FunnelDerivation.retired_at.is_(None),
        )
    )
    if stage_id is None:
        return None
    seen = cursors.DERIVED.read(session, derivation.cursor_name(stage_id))
    return stage_id, None if seen is None else seen.version


def _live(found) -> bool:
    """Whether a stage (as _staged reads it) is within its lease."""
    return found is not None and (found[1] is None or found[1] > utcnow() - LEASE)


def staging_elsewhere(session: Session, funnel_id: int) -> bool:
    """Whether a live stage of the funnel exists (another process is deriving it from the
    copy: the batch-by-batch catch-up leaves the funnel to it)."""
    return _live(_staged(session, funnel_id))


def abandon_stale(session: Session) -> int:
    """Retire the stages whose lease is over (their process died); returns how many."""
    funnels = session.scalars(
        select(FunnelDerivation.funnel_id).where(
            FunnelDerivation.funnel_id < 0, FunnelDerivation.retired_at.is_(None)
        )
    ).all()
    stale = [found[0] for f in funnels if (found := _staged(session, -f)) and not _live(found)]
    session.rollback()
    for stage_id in stale:
        _abandon(session, stage_id)
    return len(stale)


def _abandon(session: Session, stage_id: int) -> None:
    """Retire a stage (purge_retired deletes its rows)."""
    session.rollback()
    with derivation.writers_lock(session):
        _retire(session, stage_id)
        session.commit()


def _retire(session: Session, stage_id: int) -> None:
    """Retire a stage in the caller's write transaction."""
    session.execute(
        update(FunnelDerivation).where(FunnelDerivation.id == stage_id).values(retired_at=utcnow())
    )
    cursors.touch(session, derivation.cursor_name(stage_id))


def catch_up_funnel(session: Session, funnel_id: int, seconds: float | None = None) -> int:
    """derivation.catch_up_funnel, a derivation far behind staged from the copy first.

    While another process stages it, the funnel is left to that one. Returns the events
    passed over (0 when the funnel is gone)."""
    found = derivation.follow_site_zone(session, funnel_id)
    if found is None or found.days_tz is None:  # gone
        return 0
    if staging_elsewhere(session, funnel_id):
        session.rollback()
        return 0
    passed = 0
    up_to_id = worth_staging(session, found)
    if up_to_id is not None:
        before = derivation.position(session, found.id)
        if stage(session, funnel_id, found, up_to_id):
            passed = up_to_id - before
    return passed + derivation.catch_up_funnel(session, funnel_id, seconds)


def worth_staging(session: Session, current: derivation.Current) -> int | None:
    """The event id to stage the derivation up to (the store's cursor), when it is
    STAGE_BACKLOG or more behind that; else None. Strict funnels derive nothing."""
    if definition_from_json(current.definition).mode != "ordered":
        return None
    store = cursors.DERIVED.read(session, STORE_CURSOR)
    if store is None:
        return None
    behind = store.last_event_id - derivation.position(session, current.id)
    return store.last_event_id if behind >= max(STAGE_BACKLOG, 1) else None


def stage(session: Session, funnel_id: int, current: derivation.Current, up_to_id: int) -> bool:
    """Derive the funnel's rows up to `up_to_id` from the copy into a stage and swap it in
    for `current`; whether it was swapped in (False: another process stages it, or a
    change came first and the stage was retired)."""
    started = _start(session, funnel_id, current)
    if started is None:
        return False
    stage_id, site_id = started
    name = derivation.cursor_name(stage_id)
    seen = cursors.DERIVED.read_existing(session, name)
    definition = definition_from_json(current.definition)
    rows = settled_rows.compute(session, site_id, definition, zone(str(current.days_tz)), up_to_id)
    for table, columns, chunk in _chunks(rows):
        with derivation.writers_lock(session):
            moved = not cursors.DERIVED.claim(session, name, seen)
            if not moved:
                write_rows(session, table, ("derivation_id", *columns), stage_id, chunk)
                seen = cursors.DERIVED.read_existing(session, name)
                session.commit()
        if moved:  # an erasure or a link came first: what was read may be gone
            _abandon(session, stage_id)
            return False
    return _swap(session, funnel_id, current, stage_id, seen, up_to_id)


def _start(session: Session, funnel_id: int, current: derivation.Current):
    """Make the funnel's stage (a derivation and its cursor at 0): (its id, the site id),
    or None when another process's live stage is there."""
    session.rollback()
    with derivation.writers_lock(session):
        found = _staged(session, funnel_id)
        if _live(found):
            session.rollback()
            return None
        site_id = session.scalar(
            select(FunnelDerivation.site_id).where(FunnelDerivation.id == current.id)
        )
        if site_id is None:  # purged meanwhile: the next catch-up finds the current one
            session.rollback()
            return None
        if found is not None:  # left by a dead process: retired, then purged
            _retire(session, found[0])
        try:
            stage_id = derivation.start(
                session, staged_funnel_id(funnel_id), site_id, str(current.days_tz)
            )
            session.commit()
        except IntegrityError:  # another process made its stage first
            session.rollback()
            return None
    return stage_id, site_id


def _swap(
    session: Session,
    funnel_id: int,
    current: derivation.Current,
    stage_id: int,
    seen: cursors.Position,
    up_to_id: int,
) -> bool:
    """Make the stage the funnel's current derivation, its cursor at `up_to_id`, if
    nothing changed since it was begun; else retire it. Whether it was swapped in."""
    session.rollback()
    with derivation.writers_lock(session):
        funnel = derivation.lock_funnel(session, funnel_id)
        now = derivation.current(session, funnel_id) if funnel is not None else None
        unchanged = (
            now == current
            and derivation.position(session, current.id) <= up_to_id
            and cursors.DERIVED.claim(session, derivation.cursor_name(stage_id), seen, up_to_id)
        )
        if unchanged:
            derivation.retire(session, funnel_id)
            session.execute(
                update(FunnelDerivation)
                .where(FunnelDerivation.id == stage_id)
                .values(funnel_id=funnel_id)
            )
            session.commit()
            return True
        session.rollback()
    _abandon(session, stage_id)
    return False


def _chunks(rows: settled_rows.SettledRows):
    """(table, columns, rows as tuples) of ROWS_PER_WRITE rows at most each."""
    for table, columns, found in (
        (FunnelEvent.__table__, settled_rows.EVENT_COLUMNS, rows.events),
        (FunnelAttempt.__table__, settled_rows.ATTEMPT_ROW_COLUMNS, rows.attempts),
        (FunnelExcluded.__table__, settled_rows.EXCLUDED_COLUMNS, rows.excluded),
    ):
        for batch in found.to_batches(max_chunksize=ROWS_PER_WRITE):
            values = [column.to_pylist() for column in batch.columns]
            yield table, columns, list(zip(*values, strict=True))


def write_rows(session: Session, table, columns: tuple, derivation_id: int, rows: list) -> None:
    """Insert plain tuples (all columns but the first, which is `derivation_id`) in the
    session's transaction: one prepared statement for all of them on SQLite, COPY on
    PostgreSQL (neither goes through the ORM's per-row work)."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        copy_rows(session.connection(), table.name, columns, ((derivation_id, *r) for r in rows))
        return
    raw: Any = session.connection().connection.driver_connection
    names = ", ".join(columns)
    marks = ", ".join("?" * len(columns))
    statement = f"INSERT INTO {table.name} ({names}) VALUES ({marks})"  # noqa: S608
    cursor = raw.cursor()
    try:
        # A larger page cache for these writes only: the rows land on index pages far
        # apart, each read once instead of again after the default cache let it go.
        (cache,) = cursor.execute("PRAGMA cache_size").fetchone()
        cursor.execute(f"PRAGMA cache_size = {-WRITE_CACHE_KIB}")
        try:
            cursor.executemany(statement, [(derivation_id, *row) for row in rows])
        finally:
            # The pooled connection goes back with its usual cache, whatever happened.
            cursor.execute(f"PRAGMA cache_size = {int(cache)}")
    finally:
        cursor.close()
