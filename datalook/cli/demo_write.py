"""Store the generated demo events at bulk speed, with their links and their sessions.

Events go in large executemany batches (COPY on PostgreSQL) through SQLAlchemy Core, with
the visitor_links rows they make, already applied (the events are stored as the identity
links leave them). The seed knows the sessions it generates: on a site without events it
derives them as it writes (analytics.sessions' own fold, in time order) instead of reading
the events back, and stores them with the sessions' cursor moved past the new events, in
one transaction that first checks that no other event came in between and that nothing
else moved the cursor. Otherwise (events already in the site, or a running fold or report
derived some of the new events meanwhile) the site's sessions are derived again from the
events, as a rebuild does, and the ordinary catch-up does the rest.

Each chunk is also folded into the summaries and filed in the kind index from its rows as
it is written, where their cursors stand just before it (demo_derive; on PostgreSQL the
writer takes the chunk's ids from the sequence first, to know them); the CLI's catch-up
then finds nothing left but the saved funnels. The chunks are generated,
turned into rows and their sessions in a forked child (demo_background, `prepare`) while
this process writes, folds and files the ones before.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple, cast

from sqlalchemy import Engine, Table, func, insert, select, text
from sqlalchemy.orm import Session

from ..analytics import cursors, kinds, sessions, settled
from ..analytics.funnels.models import VisitorSession
from ..analytics.store import session_days
from ..ingest.arrivals import COLUMNS as ACQUISITION
from ..models import Event, SuccessRule, VisitorLink, utcnow
from ..sql.bulk import copy_rows
from ..sql.connections import write_lock
from .demo_background import in_background
from .demo_derive import ChunkDeriver
from .demo_seed import RULES, Chunk, Generated, generate

_COLUMNS = [
    "site_id",
    "api_key_id",
    "event_name",
    "name",
    "page_path",
    "visitor_id",
    "success_user_id",
    "success_value_micros",
    "properties",
    "occurred_at",
    "received_at",
    "from_browser",
    *ACQUISITION,
    "anonymous_id",
]
_AT = _COLUMNS.index("occurred_at")
# Fixed column names; the values are bound as parameters.
_NAMES, _MARKS = ", ".join(_COLUMNS), ", ".join("?" * len(_COLUMNS))
_SQLITE_INSERT = f"INSERT INTO events ({_NAMES}) VALUES ({_MARKS})"  # noqa: S608
SQLITE_CACHE_KIB = 512 * 1024
_sessions = cast(Table, VisitorSession.__table__)
_links = cast(Table, VisitorLink.__table__)


def row_of(site_id: int, key_id: int | None, start: datetime, event: Generated) -> tuple:
    """An events row (in _COLUMNS order) of a generated event: a browser's without a key."""
    return _row(site_id, key_id, event, start + timedelta(seconds=event.offset))


def _row(site_id: int, key_id: int | None, event: Generated, at: object) -> tuple:
    """The events row of a generated event whose occurred_at and received_at are `at`."""
    browser = event.from_browser
    return (
        site_id,
        None if browser else key_id,
        event.kind,
        event.name,
        event.page,
        event.visitor,
        event.user,
        event.micros,
        event.props,
        at,
        at,
        browser,
        *event.columns,
        event.anonymous_id,
    )


def rows_of(site_id: int, key_id: int | None, chunk: Chunk) -> list[tuple]:
    """The events rows of a chunk."""
    return [row_of(site_id, key_id, chunk.start, event) for event in chunk.events]


def stored_rows(site_id: int, key_id: int | None, chunk: Chunk) -> tuple[list[tuple], list]:
    """The events rows of a chunk as SQLite stores them, and the events' times: rows_of
    with the times as the text SQLAlchemy stores in SQLite (microseconds always), inserted
    as plain tuples (SQLAlchemy's per-row parameter processing cost more than the INSERT
    itself)."""
    start, rows, times = chunk.start, [], []
    for event in chunk.events:
        at = start + timedelta(seconds=event.offset)
        rows.append(_row(site_id, key_id, event, at.isoformat(" ", "microseconds")))
        times.append(at)
    return rows, times


class SessionTracker:
    """The sessions of events fed in time order (analytics.sessions' fold): the open
    session of each visitor, closed once no later event can extend it."""

    def __init__(self, site_id: int) -> None:
        self.site_id = site_id
        self.open: dict[str, sessions.SessionState] = {}

    def add(self, rows: list[tuple], times: list | None = None) -> list[dict]:
        """Fold a chunk's rows (their times apart in `times` when the rows hold them as
        text); the visitor_sessions rows of the sessions it closed."""
        closed: list[sessions.SessionState] = []
        open_, gap, fold = self.open, sessions.GAP, sessions.fold_values
        for n, row in enumerate(rows):
            visitor, at = row[5], row[_AT] if times is None else times[n]
            state = open_.get(visitor)
            if state is not None and at - state.ended_at > gap:
                closed.append(state)
                state = None
            if state is None:
                state = open_[visitor] = sessions.SessionState(visitor, at, at)
            fold(state, at, row[2], row[4], row[3], row[11])
        if rows:  # no later event can extend a session that ended GAP before this one
            last = rows[-1][_AT] if times is None else times[-1]
            for visitor, state in list(open_.items()):
                if last - state.ended_at > sessions.GAP:
                    closed.append(open_.pop(visitor))
        return [session_row(self.site_id, state) for state in closed]

    def finish(self) -> list[dict]:
        """The rows of the sessions still open."""
        rows = [session_row(self.site_id, state) for state in self.open.values()]
        self.open.clear()
        return rows


def session_row(site_id: int, state: sessions.SessionState) -> dict:
    """sessions.to_row: its steps' encodings come from the process's cache of sequences (a
    seed's walks repeat, and to_row's hashing was most of the sessions' cost)."""
    return sessions.to_row(site_id, state)


# Ids taken from the events' sequence in one statement (consecutive unless another writer
# took some meanwhile).
_TAKE_IDS = text("SELECT nextval('events_id_seq') FROM generate_series(1, :n)")
_WITH_ID = ["id", *_COLUMNS]


def _copy_rows(connection, rows: list[tuple], deriver: ChunkDeriver) -> None:
    """PostgreSQL: COPY the rows into events under ids taken first, and derive them when
    those ids are consecutive."""
    ids = list(connection.execute(_TAKE_IDS, {"n": len(rows)}).scalars())
    copy_rows(connection, "events", _WITH_ID, map(_with_id, ids, rows))
    if ids[-1] - ids[0] == len(ids) - 1:
        deriver.derive(connection, ids[0] - 1, rows, ids[-1])


def _with_id(event_id: int, row: tuple) -> tuple:
    """An events row with its id first."""
    return (event_id, *row)


class Ready(NamedTuple):
    """Rows ready for their insert: on SQLite the statement and tuples with the times
    already in SQLAlchemy's text form (its per-row parameter processing cost more than the
    INSERT itself), elsewhere the table's name and the rows as dicts. Made by the child
    that prepares the chunks, so that the writer only inserts."""

    table: str
    statement: str | None
    rows: list


def _links_ready(site_id: int, links: list[tuple], sqlite: bool) -> Ready:
    """The visitor_links rows of links already applied to the events (not pending)."""
    return ready(
        _links,
        [
            {
                "site_id": site_id,
                "anonymous_id": anonymous_id,
                "user_id": user_id,
                "origin": origin,
                "day": day,
                "created_at": made_at,
                "pending": False,
            }
            for anonymous_id, user_id, origin, day, made_at in links
        ],
        sqlite,
    )


# Columns stored as text on SQLite, in SQLAlchemy's form.
_TIMES = {"started_at", "ended_at", "created_at"}
_DAYS = {"day"}
_TABLES = {table.name: table for table in (_links, _sessions)}


def ready(table: Table, rows: list[dict], sqlite: bool) -> Ready:
    """Rows (dicts with the same keys) of a table ready for `insert`."""
    if not sqlite or not rows:
        return Ready(table.name, None, rows)
    names = list(rows[0])
    times = [n for n, name in enumerate(names) if name in _TIMES]
    days = [n for n, name in enumerate(names) if name in _DAYS]
    marks = ", ".join("?" * len(names))
    statement = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
    values = []
    for row in rows:
        value = list(row.values())
        for n in times:
            value[n] = value[n].isoformat(" ", "microseconds")
        for n in days:
            value[n] = value[n].isoformat()
        values.append(tuple(value))
    return Ready(table.name, statement, values)


def _insert(connection, rows: Ready) -> None:
    """Insert rows made ready by `ready`."""
    if not rows.rows:
        return
    if rows.statement is None:
        connection.execute(insert(_TABLES[rows.table]), rows.rows)
    else:
        connection.exec_driver_sql(rows.statement, rows.rows)


def _newest_id(bind) -> int:
    """The largest event id (0 without events)."""
    return int(bind.scalar(select(func.max(Event.id))) or 0)


def write(
    engine: Engine,
    session: Session,
    site_id: int,
    key_id: int | None,
    events: int,
    days: int,
    visitors: int,
    progress: Callable[[int], None] | None = None,
    deriver: ChunkDeriver | None = None,
) -> int:
    """Write the generated events, their links and (on a site without events) their
    sessions; fold and file each chunk as it is written where the cursors allow
    (`deriver`, demo_derive); return how many events."""
    sessions.catch_up(session)  # what was pending before: the sessions cursor stands at it
    sqlite = engine.dialect.name == "sqlite"
    kinds.catch_up(session)  # the kind index's cursor then stands at the newest event
    seen = cursors.DERIVED.read(session, sessions.CURSOR)
    stored = session.scalar(select(func.count()).where(Event.site_id == site_id)) or 0
    direct = seen is not None and not stored
    before = _newest_id(session)
    session.rollback()
    deriver = deriver or ChunkDeriver()
    written, rest = 0, Ready(_sessions.name, None, [])
    # The same data for a new site every time; another seed into a site gets other browsers.
    parts = in_background(
        functools.partial(
            prepare, site_id, key_id, (events, days, visitors, 1 + stored), sqlite, direct
        )
    )
    # (closing: a failed write ends the child at once, not when the generator is collected)
    with contextlib.closing(parts), engine.connect() as connection, _seeding(connection):
        for part in parts:
            if part.last:  # (the loop goes on to the end: the child is then joined)
                rest = part.sessions
                continue
            rows = part.rows
            with write_lock(engine.dialect, engine.url.database), connection.begin():
                if sqlite:
                    newest = _newest_id(connection)
                    connection.exec_driver_sql(_SQLITE_INSERT, rows)
                    deriver.derive(connection, newest, rows, _newest_id(connection))
                else:
                    _copy_rows(connection, rows, deriver)
                _insert(connection, part.links)
                _insert(connection, part.sessions)
            written += len(rows)
            if progress:
                progress(written)
    _register_rules(engine, site_id, days)
    if direct and seen is not None:
        _store_sessions(session, site_id, seen, before, written, rest)
    return written


class Prepared(NamedTuple):
    """A chunk ready to write: its events rows (as stored on SQLite, as rows_of gives them
    elsewhere), the rows of its settled links and of the sessions it closed, ready to
    insert; or, `last`, the sessions still open at the end."""

    rows: list[tuple]
    links: Ready
    sessions: Ready
    last: bool = False


def prepare(
    site_id: int,
    key_id: int | None,
    generating: tuple[int, int, int, int],
    sqlite: bool,
    direct: bool,
) -> Iterator[Prepared]:
    """The chunks of generate(*generating) ready to write (their sessions when `direct`),
    then the sessions left open (in_background runs this beside the writer)."""
    tracker = SessionTracker(site_id)
    for chunk in generate(*generating):
        if sqlite:
            rows, times = stored_rows(site_id, key_id, chunk)
            made = tracker.add(rows, times) if direct else []
        else:
            rows = rows_of(site_id, key_id, chunk)
            made = tracker.add(rows) if direct else []
        links = _links_ready(site_id, chunk.links, sqlite)
        yield Prepared(rows, links, ready(_sessions, made, sqlite))
    rest = tracker.finish() if direct else []
    yield Prepared([], _links_ready(site_id, [], sqlite), ready(_sessions, rest, sqlite), True)


@contextlib.contextmanager
def _seeding(connection) -> Iterator[None]:
    """SQLite: a cache for the seed's own connection while it writes, restored after, that
    holds the new events' index pages (the anonymous ids' above all take random pages:
    else read again for each chunk). The sync setting stays: in WAL mode it only syncs at
    checkpoints (a few seconds in a whole seed), and without it a power loss meanwhile
    could damage the whole database, not only the demo's events."""
    if connection.dialect.name != "sqlite":
        yield
        return
    cache = connection.exec_driver_sql("PRAGMA cache_size").scalar()
    connection.exec_driver_sql(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")
        connection.commit()


def _store_sessions(
    session: Session,
    site_id: int,
    seen: cursors.Position,
    before: int,
    written: int,
    rest: Ready,
) -> None:
    """Store the last sessions and move the sessions' cursor past the new events, if the
    new events follow the cursor alone and nothing moved it; else derive the site's
    sessions again from its events (a running fold or report took some of them)."""
    bind = session.get_bind()
    with write_lock(bind.dialect, bind.engine.url.database):
        newest = _newest_id(session)
        others = session.scalar(
            select(func.count()).where(Event.id > before, Event.site_id != site_id)
        )
        alone = seen.last_event_id == before and newest - before == written and not others
        if alone and cursors.DERIVED.claim(session, sessions.CURSOR, seen, newest):
            _insert(session.connection(), rest)
            settled.bump(session.connection(), sessions.GENERATION)
            _bump_days(session, site_id)
            session.commit()
            return
        session.rollback()
    with write_lock(bind.dialect, bind.engine.url.database):
        position = cursors.hold(session, sessions.CURSOR)
        sessions.rederive(session, site_id, None, None, position)
        session.commit()


def _bump_days(session: Session, site_id: int) -> None:
    """Move on the version of every day of the site's sessions (those written directly,
    chunk by chunk: a copy's file built meanwhile is then stale)."""
    t = _sessions.c
    first, last = session.execute(
        select(func.min(t.started_at), func.max(t.started_at)).where(t.site_id == site_id)
    ).one()
    session_days.bump_span(session.connection(), site_id, first, last)


def _register_rules(engine: Engine, site_id: int, days: int) -> None:
    """Register the demo's success rules that the site does not know yet."""
    with engine.begin() as connection:
        known = set(
            connection.execute(
                SuccessRule.__table__.select()
                .with_only_columns(SuccessRule.name)
                .where(SuccessRule.site_id == site_id)
            ).scalars()
        )
        fresh = [name for name, _, _ in RULES if name not in known]
        if fresh:
            first = utcnow() - timedelta(days=days)
            connection.execute(
                insert(cast(Table, SuccessRule.__table__)),
                [{"site_id": site_id, "name": n, "first_seen_at": first} for n in fresh],
            )
