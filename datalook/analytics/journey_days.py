"""The journeys' figures of a settled span counted by DuckDB from the sessions' day files.

When every UTC day of the span from the site's first session on has a current day file
in this host's store (store.session_files), the figures per journey (sessions, converted,
the smallest session id, distinct visitors) are counted by one DuckDB query over those
files, with the same filters and keys as journeys' SQL: the same rows as the table's, so
the same figures. Otherwise (a day not built yet, or stale) None: the caller counts from
the table. Reads only: the files are built by the fold process.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .funnels.models import VisitorSession
from .sessions import CUT_WIDTH, KEPT_STEPS, journey_key
from .store import files, session_files
from .store.read import connect, store_directory
from .store.session_days import DAY, day_of

Row = tuple  # (key, sessions, converted, smallest id, visitors)


def _quoted(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def day_paths(session: Session, site_id: int, start: datetime, cut: datetime) -> list[str] | None:
    """The files holding the site's sessions that started in [start, cut) (UTC days, cut a
    midnight), or None when a day from the site's first session on has no current file."""
    directory = store_directory()
    if not (directory / files.STORE_ID_FILE).exists():
        return None
    store = files.store_id(directory)
    # The files first, then the first session: a session made meanwhile on an earlier day
    # shows as a day without a file (the table is read), never as a day left out.
    current = session_files.current_files(session, store, site_id, day_of(start), cut)
    first = session.scalar(
        select(func.min(VisitorSession.started_at)).where(VisitorSession.site_id == site_id)
    )
    if first is None:
        return []
    paths, day = [], max(day_of(start), day_of(first))
    while day < cut:
        found = current.get(day)
        if found is None:
            return None
        if found.sessions:
            path = session_files.day_path(directory, site_id, day, found.token)
            if not path.exists():
                return None
            paths.append(str(path))
        day += DAY
    return paths


def _ending_key(steps: int) -> str:
    """DuckDB: the text of a session's last `steps` steps (journeys._ending_key's SQL)."""
    kept = f"(CASE WHEN path_count < {KEPT_STEPS} THEN path_count ELSE {KEPT_STEPS} END)"
    skip = f"({kept} - {steps})"
    offset = f"(({skip} - 1) * {CUT_WIDTH} + 1)"
    begin = f"(CAST(substr(tail_cuts, {offset}, {CUT_WIDTH}) AS INTEGER) + 2)"
    return f"(CASE WHEN {skip} <= 0 THEN tail ELSE substr(tail, {begin}) END)"


def counted(
    session: Session,
    site_id: int,
    span: tuple[datetime, datetime],
    steps: int,
    filters: tuple[str | None, str | None, str | None],
) -> list[Row] | None:
    """Per journey of the site's sessions that started in `span` ([start, cut)) and pass
    `filters` (start path, end path, rule): (key, sessions, converted, smallest id,
    visitors), keyed as journeys keys them; None when the day files do not cover the span."""
    start, cut = span
    paths = day_paths(session, site_id, start, cut)
    if paths is None:
        return None
    if not paths:
        return []
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
    key = _ending_key(steps) if end else f"j{steps}"
    converted = "count(*)" if rule else "coalesce(sum(converted), 0)"
    listed = ", ".join(_quoted(path) for path in paths)
    sql = (
        f"SELECT {key} AS journey, count(*), {converted}, min(id), count(DISTINCT visitor_id)"  # noqa: S608 - our names, quoted values
        f" FROM read_parquet([{listed}]) WHERE {' AND '.join(where)} GROUP BY journey"
    )
    con = connect()
    try:
        return [tuple(row) for row in con.execute(sql).fetchall()]
    finally:
        con.close()
