"""The rows of a range for a report, as one DuckDB relation.

`events_relation` is the only way the reports read the copy. The spans of the range that
a valid segment of this host's store covers are read from its Parquet file; the others
from the events table (rows.rows_for, whose rows a segment holds exactly). A segment is
used only while its row exists and no counted event past the store's cursor (not yet seen
by store.invalidate) lies within GAP of what it was built from: the cursor is read first,
then the segments, then those events, so a segment that the events make stale is never
read, however far behind the fold is.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa
from flask import current_app
from sqlalchemy import func, select

from ...extensions import db
from ...models import Event
from .. import cursors
from ..ranges import zone_names
from ..sessions import GAP
from . import files
from .build import SEGMENT_COLUMNS, Segment
from .edges import Seen, tokens_joined
from .invalidate import CURSOR, clustered
from .models import StoreSegment
from .rows import OWN_COLUMNS, SCHEMA, own_rows_for, rows_for

# Past this many events not yet seen by the store's cursor, they are taken as one span.
_UNSEEN_LISTED = 10_000


#: DuckDB's threads per query: the app shares its cores with the requests of other workers.
THREADS = 2

# This process's database (in memory) and the process it was made in: a forked worker
# makes its own (a database is not shared across a fork), on first use.
_lock = threading.Lock()
_database: tuple[int, duckdb.DuckDBPyConnection] | None = None


# The databases of the parent processes, kept (unused) in a forked child: closing or
# freeing one there would stop threads that only the parent has.
_inherited: list[duckdb.DuckDBPyConnection] = []


def _forked() -> None:
    """In a child process: set aside the parent's database and make a new lock (a thread
    of the parent may have held it at the fork)."""
    global _lock, _database
    _lock = threading.Lock()
    if _database is not None:
        _inherited.append(_database[1])
    _database = None


os.register_at_fork(after_in_child=_forked)


def connect() -> duckdb.DuckDBPyConnection:
    """A connection of this process's in-memory DuckDB database for one report (close it
    after): made once per process instead of once per report. A cursor is a connection of
    its own: the tables, views and relations it registers or makes TEMP are its own,
    unseen by the reports of other threads, and go when it is closed."""
    global _database
    with _lock:
        if _database is None or _database[0] != os.getpid():
            database = duckdb.connect(":memory:")
            database.execute(f"SET threads = {THREADS}")
            # A segment's file never changes under its name (a build writes a new token's
            # file): its footer is parsed once per process, not on every report.
            database.execute("SET parquet_metadata_cache = true")
            _database = (os.getpid(), database)
        return _database[1].cursor()


def prepare_reads() -> None:
    """Make this process's database and read the time zones' names now (at a worker's
    start), so that no report's first view pays for them."""
    connect().close()
    zone_names()


def store_directory() -> Path:
    """The app's store directory (ANALYTICS_STORE_DIR)."""
    return Path(current_app.config["ANALYTICS_STORE_DIR"])


def _paths(directory: Path, chosen: list[Segment]) -> list[str]:
    """The files of the chosen segments that hold rows."""
    return [
        str(files.segment_path(directory, s.site_id, s.span_start, s.span_end, s.token))
        for s in chosen
        if s.events
    ]


def events_relation(
    con: duckdb.DuckDBPyConnection, site_id: int, start: datetime, end: datetime
) -> duckdb.DuckDBPyRelation:
    """The copy's rows of the site's counted events in [start, end) (UTC, naive): exactly
    rows_for(site_id, start, end)'s rows, as one relation of the SCHEMA columns."""
    directory = store_directory()
    chosen = usable_segments(directory, site_id, start, end)
    parts: list[pa.Table] = [rows_for(site_id, a, b) for a, b in uncovered(start, end, chosen)]
    paths = _paths(directory, chosen)
    table = pa.concat_tables(parts) if parts else SCHEMA.empty_table()
    fresh = con.from_arrow(table)
    if not paths:
        return fresh
    ts = duckdb.ColumnExpression("ts")
    stored = con.read_parquet(paths).filter(
        (ts >= duckdb.ConstantExpression(start)) & (ts < duckdb.ConstantExpression(end))
    )
    return stored.union(fresh) if table.num_rows else stored


def own_events_sql(
    con: duckdb.DuckDBPyConnection,
    site_id: int,
    start: datetime,
    end: datetime,
    chosen: list[Segment] | None = None,
) -> str:
    """SQL (a subquery) of the OWN_COLUMNS of the copy's rows of the site's counted events
    in [start, end) (UTC, naive): rows_for's rows and values in these columns.

    For a first view in a fresh process: the valid segments' files are read by one
    read_parquet of only these columns, with the range as a filter of the scan, and the
    uncovered spans' events without their visits (these columns are the event's own), so
    nothing else is read or bound. `chosen`: the segments that usable_segments gave for the
    range a moment ago (else they are chosen now). The spans' rows are registered in `con`
    as "uncovered_rows" (a cursor's own: gone when it is closed).
    """
    directory = store_directory()
    if chosen is None:
        chosen = usable_segments(directory, site_id, start, end)
    spans = uncovered(start, end, chosen)
    parts = [own_rows_for(site_id, a, b) for a, b in spans]
    columns = ", ".join(OWN_COLUMNS)
    selects = []
    if parts:
        con.register("uncovered_rows", pa.concat_tables(parts))
        selects.append(f"SELECT {columns} FROM uncovered_rows")  # noqa: S608 - our names
    paths = _paths(directory, chosen)
    if paths:
        listed = ", ".join(_quoted(path) for path in paths)
        selects.append(
            f"SELECT {columns} FROM read_parquet([{listed}])"  # noqa: S608 - quoted
            f" WHERE ts >= {_quoted(start.isoformat())}::TIMESTAMP"
            f" AND ts < {_quoted(end.isoformat())}::TIMESTAMP"
        )
    if not selects:  # no row: the columns' types from the schema
        con.register("uncovered_rows", SCHEMA.empty_table().select(list(OWN_COLUMNS)))
        selects.append(f"SELECT {columns} FROM uncovered_rows")  # noqa: S608 - our names
    return "(" + " UNION ALL ".join(selects) + ")"


def _quoted(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def usable_segments(directory: Path, site_id: int, start: datetime, end: datetime) -> list[Segment]:
    """The valid segments of this store to read for [start, end): not overlapping each
    other (the longest first), each with its file present (or without rows)."""
    if not (directory / files.STORE_ID_FILE).exists():
        return []
    store = files.store_id(directory)
    session = db.session
    seen = cursors.DERIVED.read(session, CURSOR)
    if seen is None:
        return []
    rows = [
        Segment(*row)
        for row in session.execute(
            select(*SEGMENT_COLUMNS).where(
                StoreSegment.store == store,
                StoreSegment.site_id == site_id,
                StoreSegment.span_start < end,
                StoreSegment.span_end > start,
            )
        )
    ]
    if not rows:
        return []
    stale = _stale(site_id, seen.last_event_id, rows)
    chosen: list[Segment] = []
    for row in sorted(rows, key=lambda r: (r.span_start - r.span_end, r.span_start)):
        if row.token in stale:
            continue
        if any(row.span_start < c.span_end and c.span_start < row.span_end for c in chosen):
            continue
        path = files.segment_path(directory, site_id, row.span_start, row.span_end, row.token)
        if row.events and not path.exists():
            continue
        chosen.append(row)
    return sorted(chosen, key=lambda r: r.span_start)


def _stale(site_id: int, position: int, rows: list[Segment]) -> set[str]:
    """The tokens of `rows` that a counted event past the store's cursor could change."""
    past = (Event.site_id == site_id) & (Event.id > position) & Event.counted()
    unseen = [
        Seen(*event)
        for event in db.session.execute(
            select(Event.visitor_id, Event.occurred_at).where(past).limit(_UNSEEN_LISTED + 1)
        )
    ]
    if not unseen:
        return set()
    if len(unseen) > _UNSEEN_LISTED:  # far behind: by time alone, around all of them
        first, last = db.session.execute(
            select(func.min(Event.occurred_at), func.max(Event.occurred_at)).where(past)
        ).one()
        return {r.token for r in rows if r.lo - GAP <= last and first <= r.hi + GAP}
    spans = clustered([event.at for event in unseen])
    stale = {r.token for r in rows if any(a < r.span_end and r.span_start <= b for a, b in spans)}
    return stale | tokens_joined(db.session(), site_id, unseen, [r.token for r in rows])


def uncovered(
    start: datetime, end: datetime, chosen: list[Segment]
) -> list[tuple[datetime, datetime]]:
    """The sub-spans of [start, end) that no chosen segment (sorted, disjoint) covers."""
    gaps = []
    at = start
    for row in chosen:
        if row.span_start > at:
            gaps.append((at, min(row.span_start, end)))
        at = max(at, row.span_end)
    if at < end:
        gaps.append((at, end))
    return [(a, b) for a, b in gaps if a < b]
