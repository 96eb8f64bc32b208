"""The kind index: every counted event filed under its kind, for unsaved funnels.

A kind is what a funnel step can match without properties: an event name, a page path and
a success rule name (`event_kinds`, a few hundred per site). `kind_events` keeps each
counted event under its kind, keyed (site, kind, time, id), with the visitor and the value:
an unsaved funnel finds the kinds its steps match, then reads just their events in the
range, a few sequential reads of the key, where the events table would have to be read
whole over the range (at 10M events, 3.3M rows for 30 days to keep 0.8M).

A cursor over events.id feeds new events in batches, as for the sessions; the fold process
keeps it caught up, and a report catches up the rest itself. Further behind than
BEHIND_AT_MOST (a first derivation), or for a step that matches too many kinds, a property
step or the strict mode (which needs every event of a visitor), the funnel reads the
events instead. Erasure and retention delete the rows of the events they delete, and the
kinds left without any; a rebuild files a site's events again (``refile``). Filing
an event of the settled past, or deleting any, moves the settled generation on: unsaved
funnels keep what they computed from the settled past per process (funnels.unsaved).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import defaultdict
from datetime import datetime

from sqlalchemy import Connection, delete, func, insert, literal_column, select, tuple_
from sqlalchemy.orm import Session

from ..models import Event
from ..sql.compiled import CompiledStatement, StatementCache, driver_rows
from . import cursors, settled
from .funnels.definition import FunnelDefinition, Step
from .funnels.models import DerivedCursor, EventKind, KindEvent

CURSOR = "kinds"
BATCH = 10_000
# Events a report catches up itself before reading the index; further behind (a first
# derivation of a large site), it reads the events.
BEHIND_AT_MOST = 200_000
# A funnel whose steps match more kinds than this (a prefix over many paths) reads the events.
MAX_KINDS = 2_000
KEYS_PER_QUERY = 500
STREAM_ROWS = 5_000


def kind_digest(event_name: str, page_path: str, name: str | None) -> str:
    """The unique key of a kind within its site."""
    text = "\x00".join((event_name, page_path, name if name is not None else "\x01"))
    return hashlib.sha256(text.encode()).hexdigest()


def catch_up(session: Session, seconds: float | None = None, deadline: float | None = None) -> int:
    """File the events after the cursor under their kinds (all sites), within `seconds`
    when given (at least one batch), beginning no batch past `deadline` (time.monotonic();
    a report's budget) when given; how many events were passed over."""
    return cursors.derive_in_two_phases(
        session,
        CURSOR,
        _read_events,
        _file_events,
        batch=BATCH,
        seconds=seconds,
        deadline=deadline,
    )


def position(session: Session) -> int:
    """The last event id filed in the index (0 before the first)."""
    found = session.scalar(select(DerivedCursor.last_event_id).where(DerivedCursor.name == CURSOR))
    return int(found or 0)


def _read_events(tx: Session, after_id: int, up_to_id: int) -> list[tuple]:
    """The counted events (after_id, up_to_id] as (site, digest, kind_events row values),
    read as the driver's tuples (reads only: the fold process files every event)."""
    return _read(tx, Event.id > after_id, Event.id <= up_to_id)


#: What files an event under its kind: its site, kind (name, path, rule), time and id.
KIND_COLUMNS = (
    Event.site_id,
    Event.event_name,
    Event.page_path,
    Event.name,
    Event.occurred_at,
    Event.id,
)


def _read(tx: Session, *where) -> list[tuple]:
    """The counted events `where` selects as (site, digest, kind_events row values)."""
    query = select(
        *KIND_COLUMNS,
        Event.visitor_id,
        Event.success_value_micros,
    ).where(*where, Event.counted())
    digests: dict[tuple, str] = {}  # a batch holds a few hundred kinds at most
    out = []
    for site_id, event_name, page_path, name, at, event_id, visitor, value in driver_rows(
        tx.connection(), query, STREAM_ROWS
    ):
        key = (site_id, event_name, page_path, name)
        digest = digests.get(key)
        if digest is None:
            digest = digests[key] = kind_digest(event_name, page_path, name)
        if isinstance(at, str):  # SQLite's stored text
            at = datetime.fromisoformat(at)
        out.append((site_id, digest, key, at, event_id, visitor, value))
    return out


_INSERT = StatementCache(
    {"kind_events": lambda dialect: CompiledStatement(insert(KindEvent), dialect)}
)


_FILED_COLUMNS = ("site_id", "kind_id", "occurred_at", "event_id", "visitor_id", "value_micros")


def _file_events(tx: Session, read: list[tuple]) -> None:
    """Insert the kind_events rows of the events read (in the short write transaction,
    which also makes the kinds seen for the first time), in one driver call."""
    if not read:
        return
    connection = tx.connection()
    if min(row[3] for row in read) < settled.boundary():
        # Events of the settled past (demo seeding, a long-stopped catch-up): what unsaved
        # funnels keep of it per process must be read again.
        settled.bump(connection)
    ids = kind_ids(tx, {(site_id, digest): key for site_id, digest, key, *_ in read})
    statement = _INSERT.get("kind_events", connection.dialect)
    cursor = connection.connection.cursor()
    try:
        # Rows as tuples, put in the statement's order at once (no dict per row).
        bind = statement.binder(_FILED_COLUMNS, {})
        rows = [
            (site_id, ids[(site_id, digest)], at, event_id, visitor, value)
            for site_id, digest, _, at, event_id, visitor, value in read
        ]
        statement.execute_bound(cursor, bind(rows))
    finally:
        cursor.close()


def kind_ids(
    tx: Session | Connection, wanted: dict[tuple[int, str], tuple]
) -> dict[tuple[int, str], int]:
    """The ids of these kinds ((site, digest) → (site, event name, path, rule name)),
    created if new (under the writers' lock: nobody else makes kinds meanwhile; the demo
    seed files its chunks through it too)."""
    found = _known_ids(tx, list(wanted))
    missing = [key for key in wanted if key not in found]
    if missing:
        tx.execute(
            insert(EventKind),
            [
                {
                    "site_id": site_id,
                    "digest": digest,
                    "event_name": wanted[(site_id, digest)][1],
                    "page_path": wanted[(site_id, digest)][2],
                    "name": wanted[(site_id, digest)][3],
                }
                for site_id, digest in missing
            ],
        )
        found.update(_known_ids(tx, missing))
    return found


def _known_ids(tx: Session | Connection, keys: list[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The ids of those of these (site, digest) kinds that exist."""
    by_site: dict[int, list[str]] = defaultdict(list)
    for site_id, digest in keys:
        by_site[site_id].append(digest)
    found: dict[tuple[int, str], int] = {}
    for site_id, digests in by_site.items():
        for offset in range(0, len(digests), KEYS_PER_QUERY):
            chunk = digests[offset : offset + KEYS_PER_QUERY]
            for kind_id, digest in tx.execute(
                select(EventKind.id, EventKind.digest).where(
                    EventKind.site_id == site_id, EventKind.digest.in_(chunk)
                )
            ):
                found[(site_id, digest)] = kind_id
    return found


def step_kinds(session: Session, site_id: int, step: Step) -> list[int]:
    """The ids of the site's kinds that `step` matches (up to MAX_KINDS + 1 of them)."""
    query = select(EventKind.id).where(
        EventKind.site_id == site_id, EventKind.event_name == step.event_name
    )
    if step.page_path is not None:
        prefix = step.path_prefix
        if prefix is not None:
            query = query.where(EventKind.page_path.startswith(prefix, autoescape=True))
        else:
            query = query.where(EventKind.page_path == step.page_path)
    if step.name is not None:
        query = query.where(EventKind.name == step.name)
    return list(session.scalars(query.limit(MAX_KINDS + 1)))


def answers(definition: FunnelDefinition) -> bool:
    """Whether the index can answer this funnel at all: not in strict mode (which needs
    every event of a visitor), no property step (properties are not in the index)."""
    return definition.mode != "strict" and all(s.property_key is None for s in definition.steps)


def ready(session: Session, deadline: float | None = None) -> bool:
    """Catch the index up if it is at most BEHIND_AT_MOST events behind; whether it was
    (call it before reading the index: a new event may bring a new kind). With `deadline`
    (a report's budget), the catch-up begins no batch past it: the index may then be read
    short of the newest events."""
    newest = session.scalar(select(func.max(Event.id))) or 0
    if newest - position(session) > BEHIND_AT_MOST:
        session.rollback()
        return False
    catch_up(session, deadline=deadline)
    return True


def visitor_events(
    session: Session, site_id: int, definition: FunnelDefinition, start: datetime, end: datetime
) -> tuple[dict[str, list[tuple]], int] | None:
    """A funnel's matching events from the index (caught up by `ready`), or None when the
    funnel must read the events (see the module's docstring).

    Returns each visitor's events of the range [start, end + window) as
    (time, event id, step mask, value), in no particular order, and the number of events
    without a visitor in [start, end). Read in the key's order: grouping by visitor here
    costs less than the database's sort.
    """
    if not answers(definition):
        return None
    masks: dict[int, int] = defaultdict(int)
    for k, step in enumerate(definition.steps):
        for kind_id in step_kinds(session, site_id, step):
            masks[kind_id] |= 1 << k
    if len(masks) > MAX_KINDS:
        return None
    grouped: dict[str, list[tuple]] = {}
    if not masks:
        return grouped, 0
    t = KindEvent
    query = select(t.visitor_id, t.occurred_at, t.event_id, t.kind_id, t.value_micros).where(
        t.site_id == site_id,
        # Literal: ids read from the database, ints (driver_rows binds no IN list).
        t.kind_id.in_([literal_column(str(int(kind_id))) for kind_id in masks]),
        t.occurred_at >= start,
        t.occurred_at < end + definition.window,
    )
    rows = driver_rows(session.connection(), query, STREAM_ROWS)
    first = next(rows, None)
    if first is None:
        return grouped, 0
    # SQLite hands times over as their stored ISO text (which sorts as the times do),
    # PostgreSQL as datetimes.
    text = isinstance(first[1], str)
    as_time = datetime.fromisoformat if text else _same
    low, high = (_stored(start), _stored(end)) if text else (start, end)
    excluded = 0
    for visitor, at, event_id, kind_id, value in itertools.chain((first,), rows):
        if visitor.startswith("a:"):  # no visitor: only counted, in the range itself
            excluded += low <= at < high
            continue
        event = (as_time(at), event_id, masks[kind_id], value)
        found = grouped.get(visitor)
        if found is None:
            grouped[visitor] = [event]
        else:
            found.append(event)
    return grouped, excluded


def _same(value):
    """The value itself (times that are datetimes already)."""
    return value


def _stored(moment: datetime) -> str:
    """A time as SQLite stores it (SQLAlchemy's format), to compare with stored text."""
    return moment.isoformat(sep=" ", timespec="microseconds")


def forget_deleted(session: Session, where, one_visitor: bool) -> None:
    """Delete the index rows of the events `where` selects (about to be deleted, in the
    same transaction), and the kinds left without any.

    One visitor's events (an erasure: a few, spread over any time) go by their keys; a
    cut-off's (many, over one span of time) by each kind's range of the span, read in the
    key's order.
    """
    if not one_visitor:
        _forget_spans(session, where)
        return
    doomed = session.execute(select(*KIND_COLUMNS).where(where, Event.counted())).all()
    if not doomed:
        return
    settled.bump(session.connection())  # unsaved funnels keep what they read of the past
    keyed = [
        (row, (row.site_id, kind_digest(row.event_name, row.page_path, row.name))) for row in doomed
    ]
    ids = _known_ids(session, list({key for _, key in keyed}))
    keys = [(row.site_id, ids[key], row.occurred_at, row.id) for row, key in keyed if key in ids]
    t = KindEvent
    for offset in range(0, len(keys), KEYS_PER_QUERY):
        chunk = keys[offset : offset + KEYS_PER_QUERY]
        session.execute(
            delete(t).where(tuple_(t.site_id, t.kind_id, t.occurred_at, t.event_id).in_(chunk))
        )
    for site_id in {row.site_id for row in doomed}:
        forget_unused(
            session, site_id, [kind_id for (site, _), kind_id in ids.items() if site == site_id]
        )


def _forget_spans(session: Session, where) -> None:
    """Delete the index rows of the events `where` selects, kind by kind over the span of
    time they cover (each row checked against their ids)."""
    spans = session.execute(
        select(Event.site_id, func.min(Event.occurred_at), func.max(Event.occurred_at))
        .where(where, Event.counted())
        .group_by(Event.site_id)
    ).all()
    if not spans:
        return
    settled.bump(session.connection())  # unsaved funnels keep what they read of the past
    doomed = select(Event.id).where(where)
    t = KindEvent
    for site_id, low, high in spans:
        kind_ids = list(session.scalars(select(EventKind.id).where(EventKind.site_id == site_id)))
        for offset in range(0, len(kind_ids), KEYS_PER_QUERY):
            session.execute(
                delete(t).where(
                    t.site_id == site_id,
                    t.kind_id.in_(kind_ids[offset : offset + KEYS_PER_QUERY]),
                    t.occurred_at >= low,
                    t.occurred_at <= high,
                    t.event_id.in_(doomed),
                )
            )
        forget_unused(session, site_id)


def forget_unused(session: Session, site_id: int, kind_ids: list[int] | None = None) -> None:
    """Delete the site's kinds (of `kind_ids`; None: all) that no filed event has any more:
    what was derived from deleted events goes with them, as a derivation of the events
    left would have no such kind. A kind whose events are not filed yet is made again when
    they are (under the writers' lock, like this)."""
    t = KindEvent
    unused = ~select(t.kind_id).where(t.site_id == site_id, t.kind_id == EventKind.id).exists()
    if kind_ids is None:
        session.execute(delete(EventKind).where(EventKind.site_id == site_id, unused))
        return
    for offset in range(0, len(kind_ids), KEYS_PER_QUERY):
        chunk = kind_ids[offset : offset + KEYS_PER_QUERY]
        session.execute(
            delete(EventKind).where(EventKind.site_id == site_id, EventKind.id.in_(chunk), unused)
        )


def refile(
    tx: Session, site_id: int, start: datetime | None, end: datetime | None, up_to_id: int
) -> int:
    """File again the site's counted events of [start, end) (None: no bound) up to
    `up_to_id`, replacing the index rows of that range (in the caller's write transaction,
    which holds the cursor: analytics.rebuild). Returns the events filed."""
    span = []
    if start is not None:
        span.append(Event.occurred_at >= start)
    if end is not None:
        span.append(Event.occurred_at < end)
    read = _read(tx, Event.site_id == site_id, Event.id <= up_to_id, *span)
    t = KindEvent
    kind_ids = list(tx.scalars(select(EventKind.id).where(EventKind.site_id == site_id)))
    for offset in range(0, len(kind_ids), KEYS_PER_QUERY):
        where = [t.site_id == site_id, t.kind_id.in_(kind_ids[offset : offset + KEYS_PER_QUERY])]
        if start is not None:
            where.append(t.occurred_at >= start)
        if end is not None:
            where.append(t.occurred_at < end)
        tx.execute(delete(t).where(*where))
    _file_events(tx, read)
    return len(read)


# The builder offers at most this many of each (paths, rule names, custom event names).
CHOICES = 200


def step_choices(session: Session, site_id: int, limit: int = CHOICES) -> dict[str, list[str]]:
    """What the funnel builder suggests from the site's own kinds: the page paths of its
    page views and clicks, its success rule names and its custom event names (sorted; a
    bounded read of the site's kinds, never of its events)."""
    k = EventKind

    def distinct(column, *where) -> list[str]:
        """The first `limit` distinct values of a kind column."""
        query = (
            select(column)
            .where(k.site_id == site_id, column.is_not(None), *where)
            .group_by(column)
            .order_by(column)
            .limit(limit)
        )
        return [value for value in session.scalars(query) if value]

    return {
        "paths": distinct(k.page_path, k.event_name.in_(("pageview", "click"))),
        "rules": distinct(k.name, k.event_name == "success"),
        "customs": distinct(k.name, k.event_name == "custom"),
    }
