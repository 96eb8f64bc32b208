"""Fold new events into the report summaries, asynchronously from ingestion.

Ingestion only inserts events. A fold claims the batch of events after the cursor (the
last folded `events.id`, one row in analytics_cursor), adds them up (accumulate), writes
the increments into the hourly rollups and visitor sketches (write) and moves the cursor,
in one transaction. Two folds never count the same events: the cursor follows the protocol
of analytics.cursors (its row carries a version that every fold, rebuild and erasure moves
on; a writer that finds it moved rolls back and starts again). A host-wide file lock keeps
the processes of one host from doing the same work twice (other hosts are kept out by the
version alone).

Ids and commit order: on SQLite there is one writer at a time and an id is taken inside
the writing transaction, so ids become visible in order. On PostgreSQL a sequence hands
out ids before the commit, so id 11 may be visible while id 10 is still being written. A
fold therefore stops before a gap in the ids while the event after it was received less
than cursors.GAP_GRACE ago (the missing one may still commit), and steps over an older gap
(a rolled-back insert, or a duplicate skipped by ON CONFLICT, which never appears). A gap
is also final at once when no write transaction is open in the database
(cursors.settled_id).

Server workers do not fold: the fold process (analytics.worker: `flask analytics fold`,
which scripts/serve.sh runs beside the server) folds every few seconds, and each report
folds what is pending, for REPORT_CATCHUP_BUDGET_MS at most, before it is read
(``catch_up`` with a deadline; analytics.freshness), so events show within seconds. Late
events (up to 7 days back) land in their own hour like any other.
"""

from __future__ import annotations

import contextlib
import os
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine, delete, select

from ...models import Event, utcnow
from ...sql import filelock
from ...sql.compiled import driver_rows
from ...sql.connections import write_lock
from .. import cursors, settled
from .accumulate import RECEIVED_AT, Accumulator, fold_columns
from .models import (
    HourlyPage,
    HourlyProperty,
    HourlyRule,
    HourlyTotals,
    SummaryCursor,
    VisitorSketch,
)
from .write import stored_sketches, write

BATCH = 5000
CURSOR = "events"  # the summaries' row in analytics_cursor
CURSORS = cursors.CursorTable(SummaryCursor, counter=True)
# Summary tables of a site, emptied by a rebuild.
SITE_TABLES = (HourlyTotals, HourlyRule, HourlyPage, HourlyProperty, VisitorSketch)


def position(connection) -> cursors.Position:
    """How far the summaries have folded: the last folded event id and the version."""
    return CURSORS.read_existing(connection, CURSOR)


def claim(connection, seen: cursors.Position, last_id: int | None) -> bool:
    """Move the cursor to `last_id` (None: where it is) and its version on, if nobody else
    did since it was read at `seen`."""
    return CURSORS.claim(connection, CURSOR, seen, last_id)


def usable_prefix(
    rows: list, last_id: int, now: datetime, ordered_ids: bool, settled_id: int = 0
) -> list:
    """The rows a fold may take: all on SQLite; on PostgreSQL up to a young id gap
    (cursors.safe_prefix; a gap before an id up to ``settled_id`` is final)."""
    take = cursors.safe_prefix(last_id, rows, now, not ordered_ids, settled_id, RECEIVED_AT)
    return rows[:take]


def host_lock_path(engine: Engine, instance_path: str) -> str:
    """Beside the SQLite file, or in the instance folder for a server database."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return database + ".analytics"
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return os.path.join(instance_path, "analytics.lock")


def host_lock(engine: Engine, instance_path: str) -> filelock.WriteLock:
    """The fold lock of this database on this host: keeps this host's processes and
    threads from folding at the same moment (one object per path and process)."""
    return filelock.for_path(host_lock_path(engine, instance_path))


def fold_once(engine: Engine, batch: int = BATCH) -> int:
    """Fold one batch of new events (caller holds the host lock); return how many.

    Each read is a short transaction of its own: a snapshot held across the Python work
    would keep SQLite from restarting its WAL (see sql/wal_checkpoints.py), and every
    writer would pay for the longer WAL. The version check when writing makes the reads
    consistent: if another fold wrote in between, this one starts over.
    """
    dialect = engine.dialect.name
    with engine.connect() as connection:
        seen = position(connection)
        final_below = cursors.settled_id(connection) if dialect == "postgresql" else 0
        # The driver's own rows (no Row object per event; the times stay SQLite's text).
        rows = list(
            driver_rows(
                connection,
                select(*fold_columns(dialect))
                .where(Event.id > seen.last_event_id)
                .order_by(Event.id)
                .limit(batch),
            )
        )
        connection.rollback()  # end the snapshot before the work
    rows = usable_prefix(rows, seen.last_event_id, utcnow(), dialect == "sqlite", final_below)
    if not rows:
        return 0
    acc = Accumulator()
    acc.add_all(rows)
    keys = list(acc.sketches_by_key())
    with engine.connect() as connection:
        stored = stored_sketches(connection, keys)
        connection.rollback()
    with write_lock(engine.dialect, engine.url.database), engine.begin() as connection:
        if not claim(connection, seen, rows[-1][0]):
            connection.rollback()
            return -1  # another host folded meanwhile: read again
        write(connection, acc, stored, dialect)
    return len(rows)


def catch_up(
    engine: Engine,
    instance_path: str,
    max_batches: int | None = None,
    batch: int = BATCH,
    deadline: float | None = None,
) -> int:
    """Fold until no event is pending (or max_batches were folded); return how many.

    With `deadline` (a time.monotonic() value: a report's budget, or a tick's), waits for
    the host lock only until then (folding nothing when another fold holds it that long)
    and begins no batch once it has passed, not even the first.
    """
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    folded = 0
    batches = 0
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(host_lock(engine, instance_path).hold(timeout))
        except filelock.LockTimeout:
            return 0  # another fold is at it: its events show once it is done
        while max_batches is None or batches < max_batches:
            if deadline is not None and time.monotonic() >= deadline:
                break
            done = fold_once(engine, batch)
            if done == 0:
                break
            folded += max(done, 0)
            batches += 1
            if 0 < done < batch:
                # The head is reached. Chasing events that arrive meanwhile would fold a
                # handful at a time, and each fold has a fixed cost (its transactions, the
                # sketches it merges): they wait for the next fold instead.
                break
    return folded


def pending(engine: Engine) -> int:
    """How many stored events the summaries have not folded yet (0 when caught up)."""
    with engine.connect() as connection:
        last_id = position(connection).last_event_id
        top = connection.execute(select(Event.id).order_by(Event.id.desc()).limit(1)).scalar()
    return max(0, (top or 0) - last_id)


def rebuild_site(engine: Engine, instance_path: str, site_id: int, batch: int = 50_000) -> int:
    """Recompute a site's summaries from its raw events; safe while events arrive.

    Holds the fold lock, reads the cursor, and recounts the site's events up to it; one
    transaction then replaces the site's summaries, but only if the cursor's version is
    unchanged (another host's fold would otherwise be lost or doubled: then it starts
    over). Events after the cursor are left to the next fold, as usual. On SQLite the write
    transaction holds other writers back while the rows are replaced.
    """
    dialect = engine.dialect.name
    with host_lock(engine, instance_path):
        while True:
            acc = Accumulator()
            with engine.connect() as connection:
                seen = position(connection)
                after = 0
                while True:
                    rows = connection.execute(
                        select(*fold_columns(dialect))
                        .where(
                            Event.site_id == site_id,
                            Event.id > after,
                            Event.id <= seen.last_event_id,
                        )
                        .order_by(Event.id)
                        .limit(batch)
                    ).all()
                    if not rows:
                        break
                    acc.add_all(rows)
                    after = rows[-1][0]
                connection.rollback()
            with write_lock(engine.dialect, engine.url.database), engine.begin() as connection:
                if not claim(connection, seen, None):
                    connection.rollback()
                    continue
                for table in SITE_TABLES:
                    connection.execute(delete(table).where(table.site_id == site_id))
                settled.bump(connection)  # any bucket may change
                write(connection, acc, {}, dialect)
            return acc.count
