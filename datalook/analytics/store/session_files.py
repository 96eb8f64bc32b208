"""The journeys' copy of the settled sessions: one Parquet file per site and UTC day.

A day file holds the visitor_sessions rows (COLUMNS) of the sessions that started on that
UTC day, for days before sessions.boundary() (the settled past; the fresh part is read
from the table). It is current while the version it was built from (its row in
session_day_files) is the day's version in session_days (store.session_days: every change
to the day's sessions moves it on). A day without sessions has a row and no file.

Built by the fold process (store.upkeep, newest days first, within a budget) and by
`flask analytics store build`; never by a report. A build reads the day's version, then
its rows, writes a file under a new token, and stores its row only if the version is
still the same (under the writers' lock); else it drops the file and the day is built on
a later call. A file's row names the version it was built from, so a later change makes
it stale at once. Files that no row names go after gc.GRACE (a report may be reading one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from ...models import Site, utcnow
from ...sql.compiled import driver_rows
from ...sql.connections import write_lock
from ..funnels.models import JOURNEY_KEYS, VisitorSession
from ..sessions import boundary
from . import files, gc
from .models import SessionDay, SessionDayFile
from .session_days import DAY, day_of

FOLDER = "sessions"  # beside the segments' site folders: store/sessions/<site id>/
COLUMNS = pa.schema(
    [
        ("id", pa.int64()),
        ("visitor_id", pa.string()),
        ("started_at", pa.timestamp("us")),
        *[(key, pa.int64()) for key in JOURNEY_KEYS],
        ("converted", pa.int64()),
        ("rules", pa.string()),
        ("last_path", pa.string()),
        ("path_count", pa.int64()),
        ("tail", pa.string()),
        ("tail_cuts", pa.string()),
    ]
)


@dataclass
class Built:
    """What a build did: days stored, sessions written, builds dropped (the day's sessions
    changed meanwhile)."""

    days: int = 0
    sessions: int = 0
    dropped: int = 0


@dataclass(frozen=True)
class DayFile:
    """A day file's row: the version it was built from, its token and row count."""

    day: datetime
    version: int
    token: str
    sessions: int


def day_path(directory: Path, site_id: int, day: datetime, token: str) -> Path:
    """The file of one site's sessions of one day."""
    return directory / FOLDER / str(site_id) / f"{day:%Y%m%d}-{token}{files.SUFFIX}"


def current_files(
    session: Session, store: str, site_id: int, first: datetime, end: datetime
) -> dict[datetime, DayFile]:
    """The site's day files in this store of the days in [first, end) that are current
    (built from the day's version; no version row: 0)."""
    version = func.coalesce(SessionDay.version, 0)
    rows = session.execute(
        select(
            SessionDayFile.day,
            SessionDayFile.version,
            SessionDayFile.token,
            SessionDayFile.sessions,
        )
        .outerjoin(
            SessionDay,
            (SessionDay.site_id == SessionDayFile.site_id) & (SessionDay.day == SessionDayFile.day),
        )
        .where(
            SessionDayFile.store == store,
            SessionDayFile.site_id == site_id,
            SessionDayFile.day >= first,
            SessionDayFile.day < end,
            SessionDayFile.version == version,
        )
    )
    return {row.day: DayFile(*row) for row in rows}


def build(
    session: Session,
    directory: Path,
    site_ids: list[int] | None = None,
    seconds: float | None = None,
    now: datetime | None = None,
) -> Built:
    """Build the missing and stale day files of the sites (every site: None), newest day
    first; with `seconds`, start nothing new once that many have passed."""
    deadline = None if seconds is None else time.monotonic() + seconds
    done = Built()
    store = files.store_id(directory)
    end = boundary(now)
    if site_ids is None:
        site_ids = list(session.scalars(select(Site.id).order_by(Site.id)))
    work = [
        (day, site_id)
        for site_id in site_ids
        for day in _missing(session, directory, store, site_id, end)
    ]
    session.rollback()
    for day, site_id in sorted(work, key=lambda item: (item[0], -item[1]), reverse=True):
        if deadline is not None and time.monotonic() >= deadline:
            break
        _build_day(session, directory, store, site_id, day, done)
    return done


def _missing(
    session: Session, directory: Path, store: str, site_id: int, end: datetime
) -> list[datetime]:
    """The days before `end` from the site's first session's on without a current file
    (or whose file is gone from the disk)."""
    first = session.scalar(
        select(func.min(VisitorSession.started_at)).where(VisitorSession.site_id == site_id)
    )
    if first is None:
        return []
    current = current_files(session, store, site_id, day_of(first), end)
    missing, day = [], day_of(first)
    while day < end:
        found = current.get(day)
        if found is None or (
            found.sessions and not day_path(directory, site_id, day, found.token).exists()
        ):
            missing.append(day)
        day += DAY
    return missing


def _version(session: Session, site_id: int, day: datetime) -> int:
    """The day's version (0: never changed)."""
    found = session.scalar(
        select(SessionDay.version).where(SessionDay.site_id == site_id, SessionDay.day == day)
    )
    return int(found or 0)


def day_rows(session: Session, site_id: int, day: datetime) -> pa.Table:
    """The day's sessions as its file's rows, read now (as the driver's own tuples: no Row
    object per session, SQLite's time text cast by Arrow)."""
    t = VisitorSession.__table__.c
    statement = select(*[t[name] for name in COLUMNS.names]).where(
        t.site_id == site_id, t.started_at >= day, t.started_at < day + DAY
    )
    rows = list(driver_rows(session.connection(), statement))
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS.names]
    arrays = []
    for values, kind in zip(columns, COLUMNS.types, strict=True):
        if kind == pa.timestamp("us") and values and isinstance(values[0], str):
            arrays.append(pa.array(values, type=pa.string()).cast(kind))
        else:
            arrays.append(pa.array(values, type=kind))
    return pa.Table.from_arrays(arrays, schema=COLUMNS)


def _build_day(
    session: Session, directory: Path, store: str, site_id: int, day: datetime, done: Built
) -> None:
    """Build one day's file and store its row if the day did not change meanwhile."""
    version = _version(session, site_id, day)  # first: rows read after it are as new
    table = day_rows(session, site_id, day)
    session.rollback()
    token = files.new_token()
    path = day_path(directory, site_id, day, token)
    if table.num_rows:
        files.write(path, table)
    row = {
        "store": store,
        "site_id": site_id,
        "day": day,
        "version": version,
        "token": token,
        "sessions": table.num_rows,
        "built_at": utcnow(),
    }
    engine = session.get_bind().engine  # the bind is an Engine here; .engine says so to mypy
    stored = False
    with write_lock(engine.dialect, engine.url.database):
        try:
            if _version(session, site_id, day) == version:
                session.execute(
                    delete(SessionDayFile).where(
                        SessionDayFile.store == store,
                        SessionDayFile.site_id == site_id,
                        SessionDayFile.day == day,
                    )
                )
                session.execute(insert(SessionDayFile).values(**row))
                stored = True
            session.commit()
        except BaseException:
            session.rollback()
            path.unlink(missing_ok=True)
            raise
    if stored:
        done.days += 1
        done.sessions += table.num_rows
    else:
        path.unlink(missing_ok=True)
        done.dropped += 1


def collect(session: Session, directory: Path, grace: timedelta = gc.GRACE) -> int:
    """Remove the day files of this store that no row names (and temporary files left by
    a build that died), once older than `grace`; how many were removed."""
    return gc.collect_unnamed(session, directory, directory / FOLDER, SessionDayFile, grace)
