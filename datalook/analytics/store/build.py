"""Building the store's segments: the copy's rows of spans whose events are settled.

A segment is one site's UTC day (days that ended) or UTC hour (hours of a day that has not
ended yet, built as they end), built once SETTLE has passed since its end. A day is built
at once when it holds few events; a larger one hour by hour (each build stays short: the
fold process calls this between its folds, within a budget), and its 24 valid hours are
then compacted into the day (their files concatenated: a day's rows are its hours' rows,
each row carrying its whole visit).

Newest spans first. A build reads the store's cursor (invalidate.CURSOR) first, then the
rows (rows.rows_for), and stores its row and edges (store.edges) only if, under the
writers' lock, the cursor's version is still the one it read (no deletion, no rebuild, no
invalidation meanwhile) and no counted event past the cursor could change the rows (the
cursor has not seen it yet; once it does, it deletes the segment). Otherwise the file is
dropped and the span is built again on a later call. So a stored segment has exactly
rows_for's rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ...models import Event, Site, utcnow
from ...sql.connections import write_lock
from .. import cursors
from ..sessions import GAP
from . import daily, files
from .edges import Edge, Seen, changes, edges_of
from .invalidate import CURSOR
from .models import StoreEdge, StoreSegment
from .rows import rows_for
from .session_days import day_of

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
# A span is built once this long has passed since its end: the events sent just before it
# ended are in by then, and most visits across its end have ended (a visit that goes on
# invalidates it: it is built again).
SETTLE = timedelta(minutes=5)
# Past this many events not yet seen by the store's cursor, a build stores nothing.
UNSEEN_LIMIT = 10_000
# Within a budget (the fold's ticks), a day with at most this many events is built in one
# go, a larger one hour by hour; without one (the command), every day in one go (a quarter
# faster: one read of the visits across the edges instead of 24).
DAY_AT_ONCE_EVENTS = 20_000


@dataclass
class Progress:
    """What a build did: segments stored, days compacted, rows written, files and bytes
    written, builds dropped (the events changed meanwhile)."""

    built: int = 0
    compacted: int = 0
    rows: int = 0
    files: int = 0
    bytes: int = 0
    dropped: int = 0


class Segment(NamedTuple):
    """A segment's row, as read or about to be stored."""

    token: str
    store: str
    site_id: int
    span_start: datetime
    span_end: datetime
    lo: datetime
    hi: datetime
    events: int


SEGMENT_COLUMNS = tuple(getattr(StoreSegment, name) for name in Segment._fields)


@dataclass(frozen=True)
class _Work:
    """One thing to do: build [start, end) of a site, or compact its hour segments."""

    site_id: int
    start: datetime
    end: datetime
    compact: tuple[Segment, ...] = ()


def build(
    session: Session,
    directory: Path,
    site_ids: list[int] | None = None,
    seconds: float | None = None,
    now: datetime | None = None,
) -> Progress:
    """Build the missing segments of the sites (every site: None), newest first; with
    `seconds`, start nothing new once that many have passed. Builds nothing while the
    store's cursor is more than a batch behind the events (the fold catches it up first)."""
    deadline = None if seconds is None else time.monotonic() + seconds
    progress = Progress()
    store = files.store_id(directory)
    seen = cursors.DERIVED.read(session, CURSOR)
    newest = session.scalar(select(func.max(Event.id))) or 0
    session.rollback()
    if seen is None or newest - seen.last_event_id > cursors.BATCH:
        return progress
    while True:
        at_once = DAY_AT_ONCE_EVENTS if deadline is not None else None
        _forget_missing(session, directory, store, site_ids)
        work = _plan(session, store, site_ids, now or utcnow(), at_once)
        done_before = progress.built + progress.compacted
        for item in work:
            if deadline is not None and time.monotonic() >= deadline:
                return progress
            if item.compact:
                _compact(session, directory, store, item, progress)
            else:
                _build_span(session, directory, store, item, progress)
        if not work or progress.built + progress.compacted == done_before:
            return progress  # nothing left, or nothing could be stored: a later call


def _forget_missing(
    session: Session, directory: Path, store: str, site_ids: list[int] | None
) -> None:
    """Delete the segments of this store whose file is missing (removed by hand, a disk
    restored from a backup): their spans are built again."""
    query = select(*SEGMENT_COLUMNS).where(StoreSegment.store == store, StoreSegment.events > 0)
    if site_ids is not None:
        query = query.where(StoreSegment.site_id.in_(site_ids))
    rows = [Segment(*row) for row in session.execute(query)]
    session.rollback()
    missing = [
        row.token
        for row in rows
        if not files.segment_path(
            directory, row.site_id, row.span_start, row.span_end, row.token
        ).exists()
    ]
    if missing:
        forget(session, missing)


def _plan(
    session: Session, store: str, site_ids: list[int] | None, now: datetime, at_once: int | None
) -> list[_Work]:
    """What is missing, newest first (days of up to `at_once` events in one go; None: all)."""
    if site_ids is None:
        site_ids = list(session.scalars(select(Site.id).order_by(Site.id)))
    work: list[_Work] = []
    for site_id in site_ids:
        work += _site_plan(session, store, site_id, now, at_once)
    session.rollback()
    work.sort(key=lambda item: (item.start, -item.site_id), reverse=True)
    return work


def _site_plan(
    session: Session, store: str, site_id: int, now: datetime, at_once: int | None
) -> list[_Work]:
    """The missing segments of one site."""
    first = session.scalar(select(func.min(Event.occurred_at)).where(Event.site_id == site_id))
    if first is None:
        return []
    rows = session.execute(
        select(*SEGMENT_COLUMNS).where(StoreSegment.store == store, StoreSegment.site_id == site_id)
    )
    valid = {(row.span_start, row.span_end): Segment(*row) for row in rows}
    work: list[_Work] = []
    day = day_of(now)
    while day >= day_of(first):
        end = day + DAY
        if (day, end) not in valid:
            work += _day_plan(session, site_id, day, valid, now, at_once)
        day -= DAY
    return work


def _day_plan(
    session: Session,
    site_id: int,
    day: datetime,
    valid: dict[tuple[datetime, datetime], Segment],
    now: datetime,
    at_once: int | None,
) -> list[_Work]:
    """The missing segments of one day without a valid day segment."""
    end = day + DAY
    hours = [day + n * HOUR for n in range(24)]
    if end + SETTLE <= now:
        held = [valid.get((hour, hour + HOUR)) for hour in hours]
        if all(row is not None for row in held):
            return [_Work(site_id, day, end, tuple(row for row in held if row is not None))]
        if at_once is None:
            return [_Work(site_id, day, end)]
        count = session.scalar(
            select(func.count()).where(
                Event.site_id == site_id,
                Event.occurred_at >= day,
                Event.occurred_at < end,
                Event.counted(),
            )
        )
        if (count or 0) <= at_once:
            return [_Work(site_id, day, end)]
    return [
        _Work(site_id, hour, hour + HOUR)
        for hour in reversed(hours)
        if hour + HOUR + SETTLE <= now and (hour, hour + HOUR) not in valid
    ]


def reach(table: pa.Table, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[lo, hi]: the span and every event of the rows' visits (their first event to their
    last)."""
    if table.num_rows == 0:
        return start, end
    ends = pc.add(table["visit_at"], table["visit_duration_us"].cast(pa.duration("us")))
    lo = pc.min(table["visit_at"]).as_py()
    hi = pc.max(ends).as_py()
    return min(start, lo), max(end, hi)


def _build_span(
    session: Session, directory: Path, store: str, item: _Work, progress: Progress
) -> None:
    """Build one segment from the events (rows_for) and store it if it is still exact."""
    seen = cursors.DERIVED.read(session, CURSOR)
    session.rollback()
    if seen is None:
        return
    table = rows_for(item.site_id, item.start, item.end)
    session.rollback()
    lo, hi = reach(table, item.start, item.end)
    token = files.new_token()
    path = files.segment_path(directory, item.site_id, item.start, item.end, token)
    if table.num_rows:
        files.write(path, table)
        daily.write_rollup(directory, item.site_id, item.start, item.end, token, table)
    row = Segment(token, store, item.site_id, item.start, item.end, lo, hi, table.num_rows)
    _settle(session, row, edges_of(table, item.start, item.end), path, progress, seen=seen)


def _compact(
    session: Session, directory: Path, store: str, item: _Work, progress: Progress
) -> None:
    """Store a day's 24 valid hour segments as one day segment (if all are still valid)."""
    hours = sorted(item.compact, key=lambda row: row.span_start)
    paths = [
        files.segment_path(directory, row.site_id, row.span_start, row.span_end, row.token)
        for row in hours
        if row.events
    ]
    try:
        table = files.read(paths) if paths else None
    except FileNotFoundError:  # removed (by hand): build the hours again
        forget(session, [row.token for row in hours])
        return
    token = files.new_token()
    path = files.segment_path(directory, item.site_id, item.start, item.end, token)
    if table is not None:
        files.write(path, table)
        daily.write_rollup(directory, item.site_id, item.start, item.end, token, table)
    lo, hi = min(r.lo for r in hours), max(r.hi for r in hours)
    events = sum(r.events for r in hours)
    row = Segment(token, store, item.site_id, item.start, item.end, lo, hi, events)
    edges = _day_edges(session, [r.token for r in hours], item.start, item.end)
    _settle(session, row, edges, path, progress, hours=[r.token for r in hours])


def _day_edges(session: Session, hours: list[str], start: datetime, end: datetime) -> list[Edge]:
    """A day's edges from its hours' (the visits near the day's start or end)."""
    found = {
        Edge(*row)
        for row in session.execute(
            select(StoreEdge.visitor_id, StoreEdge.lo, StoreEdge.hi).where(
                StoreEdge.token.in_(hours)
            )
        )
    }
    session.rollback()
    latest: dict[tuple[str, datetime], Edge] = {}
    for edge in sorted(found):  # one per visit (the widest, should two hours disagree)
        if edge.lo - GAP < start or edge.hi + GAP >= end:
            latest[edge.visitor, edge.lo] = edge
    return list(latest.values())


def _settle(
    session: Session,
    row: Segment,
    edges: list[Edge],
    path: Path,
    progress: Progress,
    seen: cursors.Position | None = None,
    hours: list[str] | None = None,
) -> None:
    """Store a built segment's row if it is still exact (see the module's docstring; a
    compaction: if its hours are all still valid), replacing the rows of its sub-spans;
    else drop its file."""
    engine = session.get_bind().engine  # the bind is an Engine here; .engine says so to mypy
    session.rollback()  # begin the write inside the writers' lock
    stored = False
    with write_lock(engine.dialect, engine.url.database):
        try:
            stored = _store_row(session, row, edges, seen, hours)
            if stored:
                session.commit()
            else:
                session.rollback()
        except BaseException:
            session.rollback()
            path.unlink(missing_ok=True)
            raise
    if not stored:
        path.unlink(missing_ok=True)
        progress.dropped += 1
        return
    if hours is None:
        progress.built += 1
    else:
        progress.compacted += 1
    progress.rows += row.events
    if row.events:
        progress.files += 1
        progress.bytes += path.stat().st_size


def _store_row(
    session: Session,
    row: Segment,
    edges: list[Edge],
    seen: cursors.Position | None,
    hours: list[str] | None,
) -> bool:
    """The checks and writes of _settle, in its transaction; whether the row was stored."""
    if seen is not None:
        # Locks the cursor's row (PostgreSQL) and fails if anything moved it since.
        if not cursors.DERIVED.claim(session, CURSOR, seen):
            return False
        unseen = [
            Seen(*event)
            for event in session.execute(
                select(Event.visitor_id, Event.occurred_at)
                .where(
                    Event.site_id == row.site_id,
                    Event.id > seen.last_event_id,
                    Event.counted(),
                )
                .limit(UNSEEN_LIMIT + 1)
            )
        ]
        if len(unseen) > UNSEEN_LIMIT or changes(row.span_start, row.span_end, edges, unseen):
            return False
    else:
        cursors.touch(session, CURSOR)  # an invalidation under way waits, then starts over
    if hours is not None:
        gone = session.execute(delete(StoreSegment).where(StoreSegment.token.in_(hours)))
        if gone.rowcount != len(hours):  # type: ignore[attr-defined]
            return False
    # Segments of sub-spans (hours of a day built at once) are replaced by this one.
    session.execute(
        delete(StoreSegment).where(
            StoreSegment.store == row.store,
            StoreSegment.site_id == row.site_id,
            StoreSegment.span_start >= row.span_start,
            StoreSegment.span_end <= row.span_end,
        )
    )
    session.execute(insert(StoreSegment).values(**row._asdict(), built_at=utcnow()))
    if edges:
        values = [
            {
                "token": row.token,
                "site_id": row.site_id,
                "visitor_id": e.visitor,
                "lo": e.lo,
                "hi": e.hi,
            }
            for e in edges
        ]
        session.execute(insert(StoreEdge), values)
    return True


def forget(session: Session, tokens: list[str]) -> None:
    """Delete these segments' rows (their files are missing: they are built again)."""
    engine = session.get_bind().engine
    session.rollback()
    with write_lock(engine.dialect, engine.url.database):
        try:
            session.execute(delete(StoreSegment).where(StoreSegment.token.in_(tokens)))
            session.commit()
        except BaseException:
            session.rollback()
            raise
