"""The journeys' figures of a settled span counted by DuckDB from the sessions' day files.

When every UTC day of the span from the site's first session on has a current day file
in this host's store (store.session_files; day_paths, else None: the caller reads the
table), the figures per journey (sessions, converted, the smallest session id, distinct
visitors) are counted by one DuckDB query over those files, and the journeys of the fresh
part's visitors in the span are found by one more, with the same filters and keys as
journeys' SQL: the same rows as the table's, so the same figures. Reads only: the files
are built by the fold process.
"""

from __future__ import annotations

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


Filters = tuple[str | None, str | None, str | None]  # start path, end path, rule


def _scan(paths: list[str], span: tuple[datetime, datetime], filters: Filters) -> str:
    """DuckDB: FROM and WHERE of the sessions of the files that started in `span` and pass
    `filters` (journeys' _filters)."""
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
    listed = ", ".join(_quoted(path) for path in paths)
    return f" FROM read_parquet([{listed}]) WHERE {' AND '.join(where)}"


def _key(steps: int, filters: Filters) -> str:
    """DuckDB: the journey key of a session (journeys' _key)."""
    return _ending_key(steps) if filters[1] else f"j{steps}"


def counted(
    paths: list[str], span: tuple[datetime, datetime], steps: int, filters: Filters
) -> list[Row]:
    """Per journey of the sessions of the files (day_paths of the span) that started in
    `span` ([start, cut)) and pass `filters`: (key, sessions, converted, smallest id,
    visitors), keyed as journeys keys them."""
    if not paths:
        return []
    converted = "count(*)" if filters[2] else "coalesce(sum(converted), 0)"
    sql = (
        f"SELECT {_key(steps, filters)} AS journey, count(*), {converted}, min(id),"
        f" count(DISTINCT visitor_id){_scan(paths, span, filters)} GROUP BY journey"
    )
    con = connect()
    try:
        return [tuple(row) for row in con.execute(sql).fetchall()]
    finally:
        con.close()


def journeys_of(
    paths: list[str],
    span: tuple[datetime, datetime],
    steps: int,
    filters: Filters,
    visitors: list[str],
) -> dict[str, set]:
    """Per visitor of `visitors`, the journeys of their sessions of the files that started
    in `span` and pass `filters` (journeys' _look_up_earlier, in one scan)."""
    found: dict[str, set] = {visitor: set() for visitor in visitors}
    if not paths or not visitors:
        return found
    sql = (
        f"SELECT DISTINCT visitor_id, {_key(steps, filters)}{_scan(paths, span, filters)}"  # noqa: S608 - our names, quoted values
        " AND visitor_id IN (SELECT visitor_id FROM asked_visitors)"
    )
    con = connect()
    try:
        con.register("asked_visitors", pa.table({"visitor_id": pa.array(visitors, pa.string())}))
        for visitor, journey in con.execute(sql).fetchall():
            found[visitor].add(journey)
    finally:
        con.close()
    return found
