"""The journeys' figures of a settled span counted by DuckDB from the sessions' day files.

When the UTC days of the span from the site's first session on have current day files in
this host's store (store.session_files), but for at most STALE_DAYS_READ days whose
sessions changed since their file was built (a late event, an erasure: their rows are read
from the table, as their file would hold them), day_sources says where to read them (else
None: the caller reads the table). The figures per journey (sessions, converted, the
smallest session id, distinct visitors) are then counted by one DuckDB query over those
sources, and the journeys of the fresh part's visitors in the span are found by one more,
with the same filters and keys as journeys' SQL: the same rows as the table's, so the same
figures. Reads only: the files are built by the fold process.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .funnels.models import VisitorSession
from .sessions import CUT_WIDTH, KEPT_STEPS, journey_key
from .store import files, session_files
from .store.read import connect, store_directory
from .store.session_days import DAY, day_of

Row = tuple  # (key, sessions, converted, smallest id, visitors)
# Days of a span read from the table beside the files, at most: a changed day waits for the
# fold's next tick to be built again, and one day's sessions are quick to read meanwhile;
# a span with more reads the table as a whole.
STALE_DAYS_READ = 3
_STALE = "stale_sessions"  # the stale days' rows, as DuckDB sees them


@dataclass(frozen=True)
class DaySources:
    """Where a settled span's sessions are read from: the current day files, and the rows
    of the days without one (read from the table in the files' columns)."""

    paths: list[str]
    stale: pa.Table | None = None
    stale_days: tuple[datetime, ...] = ()

    @property
    def empty(self) -> bool:
        """Whether no session is there to read."""
        return not self.paths and (self.stale is None or not self.stale.num_rows)

    def relation(self) -> str:
        """DuckDB: the sessions of every source, as one relation."""
        parts = []
        if self.paths:
            listed = ", ".join(_quoted(path) for path in self.paths)
            parts.append(f"SELECT * FROM read_parquet([{listed}])")  # noqa: S608 - quoted
        if self.stale is not None:
            parts.append(f"SELECT * FROM {_STALE}")  # noqa: S608 - our own name
        return "(" + " UNION ALL ".join(parts) + ")"

    def connect(self):
        """A DuckDB connection that sees the stale days' rows."""
        con = connect()
        if self.stale is not None:
            con.register(_STALE, self.stale)
        return con


def _quoted(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def day_sources(
    session: Session, site_id: int, start: datetime, cut: datetime
) -> DaySources | None:
    """The sources of the site's sessions that started in [start, cut) (UTC days, cut a
    midnight), or None when the store is missing or more than STALE_DAYS_READ days from the
    site's first session on have no current file."""
    directory = store_directory()
    if not (directory / files.STORE_ID_FILE).exists():
        return None
    store = files.store_id(directory)
    # The files first, then the first session: a session made meanwhile on an earlier day
    # shows as a day without a file (read from the table), never as a day left out.
    current = session_files.current_files(session, store, site_id, day_of(start), cut)
    first = session.scalar(
        select(func.min(VisitorSession.started_at)).where(VisitorSession.site_id == site_id)
    )
    if first is None:
        return DaySources([])
    paths, stale_days, day = [], [], max(day_of(start), day_of(first))
    while day < cut:
        found = current.get(day)
        if found is None:
            stale_days.append(day)
        elif found.sessions:
            path = session_files.day_path(directory, site_id, day, found.token)
            if path.exists():
                paths.append(str(path))
            else:
                stale_days.append(day)
        day += DAY
    if len(stale_days) > STALE_DAYS_READ:
        return None
    if not stale_days:
        return DaySources(paths)
    stale = pa.concat_tables([session_files.day_rows(session, site_id, d) for d in stale_days])
    return DaySources(paths, stale, tuple(stale_days))


def _ending_key(steps: int) -> str:
    """DuckDB: the text of a session's last `steps` steps (journeys._ending_key's SQL)."""
    kept = f"(CASE WHEN path_count < {KEPT_STEPS} THEN path_count ELSE {KEPT_STEPS} END)"
    skip = f"({kept} - {steps})"
    offset = f"(({skip} - 1) * {CUT_WIDTH} + 1)"
    begin = f"(CAST(substr(tail_cuts, {offset}, {CUT_WIDTH}) AS INTEGER) + 2)"
    return f"(CASE WHEN {skip} <= 0 THEN tail ELSE substr(tail, {begin}) END)"


Filters = tuple[str | None, str | None, str | None]  # start path, end path, rule


def _scan(sources: DaySources, span: tuple[datetime, datetime], filters: Filters) -> str:
    """DuckDB: FROM and WHERE of the sessions of the sources that started in `span` and
    pass `filters` (journeys' _filters)."""
    start, cut = span
    first, end, rule = filters
    where = [
        f"started_at >= {_quoted(start.isoformat())}::TIMESTAMP",
        f"started_at < {_quoted(cut.isoformat())}::TIMESTAMP",
    ]
    if first:
        where.append(f"j1 = {journey_key([first])}")
    if end:
        where.append(f"last_path = {_quoted(end)}")
    if rule:
        where.append(f"contains(rules, {_quoted(f'|{rule}|')})")
    return f" FROM {sources.relation()} WHERE {' AND '.join(where)}"


def _key(steps: int, filters: Filters) -> str:
    """DuckDB: the journey key of a session (journeys' _key)."""
    return _ending_key(steps) if filters[1] else f"j{steps}"


def counted(
    sources: DaySources, span: tuple[datetime, datetime], steps: int, filters: Filters
) -> list[Row]:
    """Per journey of the sessions of the sources (day_sources of the span) that started
    in `span` ([start, cut)) and pass `filters`: (key, sessions, converted, smallest id,
    visitors), keyed as journeys keys them."""
    if sources.empty:
        return []
    converted = "count(*)" if filters[2] else "coalesce(sum(converted), 0)"
    sql = (
        f"SELECT {_key(steps, filters)} AS journey, count(*), {converted}, min(id),"
        f" count(DISTINCT visitor_id){_scan(sources, span, filters)} GROUP BY journey"
    )
    con = sources.connect()
    try:
        return [tuple(row) for row in con.execute(sql).fetchall()]
    finally:
        con.close()


def journeys_of(
    sources: DaySources,
    span: tuple[datetime, datetime],
    steps: int,
    filters: Filters,
    visitors: list[str],
) -> dict[str, set]:
    """Per visitor of `visitors`, the journeys of their sessions of the sources that
    started in `span` and pass `filters` (journeys' _look_up_earlier, in one scan)."""
    found: dict[str, set] = {visitor: set() for visitor in visitors}
    if sources.empty or not visitors:
        return found
    sql = (
        f"SELECT DISTINCT visitor_id, {_key(steps, filters)}{_scan(sources, span, filters)}"  # noqa: S608 - our names, quoted values
        " AND visitor_id IN (SELECT visitor_id FROM asked_visitors)"
    )
    con = sources.connect()
    try:
        con.register("asked_visitors", pa.table({"visitor_id": pa.array(visitors, pa.string())}))
        for visitor, journey in con.execute(sql).fetchall():
            found[visitor].add(journey)
    finally:
        con.close()
    return found
