"""Visitor sessions, derived incrementally from the events for the journeys report.

A session is a visitor's run of events with no gap longer than 30 minutes (a gap of
exactly 30 minutes stays in the session). Its journey is the sequence of page paths with
consecutive repeats collapsed; the first and the last ten steps are kept. Events without a
visitor ("a:" ids) take no part.

A cursor over events.id feeds new events in batches. An event after the visitor's latest
session extends it (or starts a new one); a late event (before the end of the visitor's
latest session) re-derives the sessions it can touch from the stored events. Deleting
events (``forget_deleted``) and a rebuild (``rederive``, window by window) derive the
sessions of a span of time again from the events left.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, func, insert, select
from sqlalchemy.orm import Session

from ..models import Event, utcnow
from ..sql.compiled import CompiledStatement, StatementCache, driver_rows
from . import cursors, settled
from .funnels.models import DerivedCursor, VisitorSession
from .store import session_days

GAP = timedelta(minutes=30)
# Sessions that started before boundary() change only with a bump of this generation.
GENERATION = "sessions"
QUIET = timedelta(hours=2)
KEPT_STEPS = 10
CUT_WIDTH = 5
CURSOR = "sessions"
_CUT = f"%0{CUT_WIDTH}d"  # one end offset, zero-padded


@dataclass(frozen=True)
class SessionEvent:
    """What a session needs of an event."""

    at: datetime
    seq: int
    event_name: str
    page_path: str
    name: str | None
    from_browser: bool = False

    @property
    def browser_pageview(self) -> bool:
        """Whether it is a page view sent by a browser (what makes a session a visit)."""
        return self.event_name == "pageview" and self.from_browser


@dataclass
class SessionState:
    """A session being built: times, counts, the kept steps and the rules converted.

    `browser_pageviews`: the browser's page views in it; a session with one is a visit
    (reports.visits), and a visit whose one event is that page view is a bounce.
    """

    visitor_id: str
    started_at: datetime
    ended_at: datetime
    events: int = 0
    browser_pageviews: int = 0
    path_count: int = 0
    head: list[str] = field(default_factory=list)
    tail: list[str] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)

    @property
    def converted(self) -> bool:
        """Whether any success event happened in the session."""
        return bool(self.rules)


def fold(state: SessionState, event: SessionEvent) -> None:
    """Add one event (at or after the session's last one) to the session."""
    fold_values(state, event.at, event.event_name, event.page_path, event.name, event.from_browser)


def fold_values(
    state: SessionState,
    at: datetime,
    event_name: str,
    page_path: str,
    name: str | None,
    from_browser: bool,
) -> None:
    """fold() of an event given by its values (a bulk writer that has no SessionEvent)."""
    state.events += 1
    state.browser_pageviews += int(event_name == "pageview" and from_browser)
    state.ended_at = max(state.ended_at, at)
    if not state.tail or state.tail[-1] != page_path:
        state.path_count += 1
        if len(state.head) < KEPT_STEPS:
            state.head.append(page_path)
        state.tail.append(page_path)
        del state.tail[:-KEPT_STEPS]
    if event_name == "success" and name and name not in state.rules:
        state.rules.append(name)


def build(visitor_id: str, events: list[SessionEvent]) -> list[SessionState]:
    """Split a visitor's events into sessions (pure)."""
    out: list[SessionState] = []
    for event in sorted(events, key=lambda e: (e.at, e.seq)):
        if not out or event.at - out[-1].ended_at > GAP:
            out.append(SessionState(visitor_id, event.at, event.at))
        fold(out[-1], event)
    return out


def encode_steps(steps: list[str]) -> tuple[str, str]:
    """The "\\n"-joined steps and the end offset of each (padded to ten with the last)."""
    text = "\n".join(steps)
    cuts, end = [], -1
    for step in steps:
        end += len(step) + 1
        cuts.append(end)
    cuts += [len(text)] * (KEPT_STEPS - len(cuts))
    return text, "".join([_CUT % cut for cut in cuts])


def decode_steps(text: str) -> list[str]:
    """The steps of an encoded sequence."""
    return text.split("\n") if text else []


def journey_key(steps: list[str]) -> int:
    """A signed 64-bit key of a step sequence, the same in every process and engine.

    Journeys are grouped by these integers (read from a covering index) instead of by
    their text. Two different journeys share a key with odds of about 1 in 10^8 on a site
    with a million distinct ones.
    """
    digest = hashlib.blake2b("\n".join(steps).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def head_keys(head: list[str]) -> dict[str, int]:
    """The j1..j10 columns: the key of the first n kept steps (all of them when fewer)."""
    keys = [journey_key(head[:n]) for n in range(1, min(len(head), KEPT_STEPS) + 1)]
    keys += [keys[-1] if keys else journey_key([])] * (KEPT_STEPS - len(keys))
    return {f"j{n}": key for n, key in enumerate(keys, start=1)}


# Step sequences encoded and keyed, per process: visitors follow the same few paths, so most
# sessions repeat a sequence seen before (bounded, least recently used out).
_SEQUENCES_CACHED = 65_536


@functools.lru_cache(maxsize=_SEQUENCES_CACHED)
def _encoded(steps: tuple[str, ...]) -> tuple[str, str]:
    """encode_steps of a sequence, remembered."""
    return encode_steps(list(steps))


@functools.lru_cache(maxsize=_SEQUENCES_CACHED)
def _keyed(head: tuple[str, ...]) -> dict[str, int]:
    """head_keys of a sequence, remembered (callers copy it, never change it)."""
    return head_keys(list(head))


def encode_steps_cached(steps: list[str]) -> tuple[str, str]:
    """encode_steps, from the process's cache of sequences."""
    return _encoded(tuple(steps))


def head_keys_cached(head: list[str]) -> dict[str, int]:
    """head_keys, from the process's cache of sequences."""
    return _keyed(tuple(head))


def to_row(
    site_id: int,
    state: SessionState,
    encode: Callable[[list[str]], tuple[str, str]] = encode_steps_cached,
    keys: Callable[[list[str]], dict[str, int]] = head_keys_cached,
) -> dict:
    """The visitor_sessions row of a session (ROW_COLUMNS; `encode` and `keys` compute
    encode_steps and head_keys, by default from the process's cache of sequences)."""
    head, cuts = encode(state.head)
    tail, tail_cuts = encode(state.tail)
    return {
        "site_id": site_id,
        "visitor_id": state.visitor_id,
        "started_at": state.started_at,
        "ended_at": state.ended_at,
        "events": state.events,
        "browser_pageviews": state.browser_pageviews,
        # Whole microseconds: the visit duration's sums stay exact integers on both engines.
        "duration_us": (state.ended_at - state.started_at) // timedelta(microseconds=1),
        "path_count": state.path_count,
        "paths": head,
        "cuts": cuts,
        "tail": tail,
        "tail_cuts": tail_cuts,
        "last_path": state.tail[-1] if state.tail else "",
        "rules": "".join(f"|{r}" for r in state.rules) + "|" if state.rules else "",
        "converted": int(state.converted),
        **keys(state.head),
    }


# What to_row fills: every column of visitor_sessions but its id.
ROW_COLUMNS = [c.name for c in VisitorSession.__table__.columns if c.name != "id"]
_STATEMENTS = StatementCache(
    {
        "insert": lambda d: CompiledStatement(
            insert(cast(Table, VisitorSession.__table__)), d, ROW_COLUMNS
        )
    }
)


def insert_rows(tx: Session, rows: list[dict]) -> None:
    """INSERT rows of to_row in one driver call, in the caller's transaction (without
    SQLAlchemy's work per row: a batch of new visitors makes a session per event)."""
    if not rows:
        return
    connection = tx.connection()
    statement = _STATEMENTS.get("insert", connection.dialect)
    cursor = connection.connection.cursor()
    try:
        statement.executemany(cursor, rows)
    finally:
        cursor.close()


def from_row(row) -> SessionState:
    """A stored session back as state that events can be folded into."""
    return SessionState(
        visitor_id=row.visitor_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        events=row.events,
        browser_pageviews=row.browser_pageviews,
        path_count=row.path_count,
        head=decode_steps(row.paths),
        tail=decode_steps(row.tail),
        rules=[r for r in row.rules.split("|") if r],
    )


_EVENT_COLUMNS = (
    Event.id,
    Event.site_id,
    Event.visitor_id,
    Event.occurred_at,
    Event.event_name,
    Event.page_path,
    Event.name,
    Event.from_browser,
)


VISITORS_PER_QUERY = 500


@dataclass
class SessionChanges:
    """What one batch of events does to the stored sessions (`earliest`: the earliest start
    of a session replaced or made; `days`: per site, the UTC days those started on)."""

    gone: list[int]
    made: list[dict]
    earliest: datetime | None = None
    days: dict[int, set[datetime]] = field(default_factory=dict)

    def note(self, site_id: int, started_at: datetime) -> None:
        """Widen `earliest` and the days to a session replaced or made."""
        if self.earliest is None or started_at < self.earliest:
            self.earliest = started_at
        self.days.setdefault(site_id, set()).add(session_days.day_of(started_at))


def derive_changes(tx: Session, after_id: int, up_to_id: int) -> SessionChanges:
    """The sessions that the events (after_id, up_to_id] replace and create (reads only)."""
    per_visitor: dict[tuple[int, str], list[SessionEvent]] = defaultdict(list)
    # The driver's own rows: no Row object per event, and SQLite's stored time text parsed
    # by fromisoformat (a fraction of the generic conversion's cost).
    rows = driver_rows(
        tx.connection(),
        select(*_EVENT_COLUMNS).where(
            Event.id > after_id,
            Event.id <= up_to_id,
            Event.visitor_id.not_like("a:%"),
            Event.counted(),
        ),
    )
    for event_id, site_id, visitor, at, event_name, path, name, browser in rows:
        if isinstance(at, str):  # SQLite's stored text
            at = datetime.fromisoformat(at)
        per_visitor[(site_id, visitor)].append(
            SessionEvent(at, event_id, event_name, path, name, bool(browser))
        )
    nearby = _sessions_near(tx, per_visitor)
    changes = SessionChanges([], [])
    for (site_id, visitor), events in per_visitor.items():
        events.sort(key=lambda e: (e.at, e.seq))
        near = nearby.get((site_id, visitor), [])
        removed, states = _rederive(tx, site_id, visitor, events, near, up_to_id)
        for old in removed:
            changes.gone.append(old.id)
            changes.note(site_id, old.started_at)
        for state in states:
            changes.made.append(to_row(site_id, state))
            changes.note(site_id, state.started_at)
    return changes


def boundary(now: datetime | None = None) -> datetime:
    """The UTC midnight at least QUIET ago. Ordinary events extend sessions that started
    minutes before them, so sessions that started before it seldom change; when one does
    (a late event, a session kept alive for hours, demo seeding, a long-stopped catch-up,
    an erasure) the sessions' generation moves on, and the journeys report, which keeps
    its counts of those sessions per process, reads them again."""
    moment = (now or utcnow()) - QUIET
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def store_changes(tx: Session, changes: SessionChanges) -> None:
    """Replace the derived sessions (inside the short write transaction), moving the
    sessions' generation on if one that started before boundary() changes, and the
    version of every day a changed session started on (their copy's files: store)."""
    if changes.earliest is not None and changes.earliest < boundary():
        settled.bump(tx.connection(), GENERATION)
    for site_id, days in sorted(changes.days.items()):
        session_days.bump(tx.connection(), site_id, days)
    table = cast(Table, VisitorSession.__table__)
    gone = changes.gone
    for offset in range(0, len(gone), VISITORS_PER_QUERY):
        tx.execute(delete(table).where(table.c.id.in_(gone[offset : offset + VISITORS_PER_QUERY])))
    insert_rows(tx, changes.made)


def _sessions_near(
    tx: Session, per_visitor: dict[tuple[int, str], list[SessionEvent]]
) -> dict[tuple[int, str], list]:
    """The stored sessions that new events can touch: those ending at most GAP before them."""
    table = cast(Table, VisitorSession.__table__)
    by_site: dict[int, list[str]] = defaultdict(list)
    for site_id, visitor in per_visitor:
        by_site[site_id].append(visitor)
    found: dict[tuple[int, str], list] = defaultdict(list)
    for site_id, visitors in by_site.items():
        since = min(min(e.at for e in per_visitor[(site_id, v)]) for v in visitors) - GAP
        for offset in range(0, len(visitors), VISITORS_PER_QUERY):
            chunk = visitors[offset : offset + VISITORS_PER_QUERY]
            for row in tx.execute(
                select(table).where(
                    table.c.site_id == site_id,
                    table.c.visitor_id.in_(chunk),
                    table.c.ended_at >= since,
                )
            ):
                found[(site_id, row.visitor_id)].append(row)
    return found


def _rederive(
    tx: Session,
    site_id: int,
    visitor: str,
    events: list[SessionEvent],
    near: list,
    up_to_id: int,
) -> tuple[list, list[SessionState]]:
    """The stored sessions to replace and the sessions replacing them, for one visitor's
    events.

    Usually the events come after every stored session: they extend the last one (within
    GAP) or start new ones. A late event instead re-reads the stored events of the sessions
    it can touch (it may merge or split them) and derives those sessions again.
    """
    first, last = events[0].at, events[-1].at
    touched = [s for s in near if s.ended_at >= first - GAP and s.started_at <= last + GAP]
    if not touched:
        return [], build(visitor, events)
    if len(touched) == 1 and first >= touched[0].ended_at:
        merged = from_row(touched[0])
        rest: list = []
        for event in events:
            if not rest and event.at - merged.ended_at <= GAP:
                fold(merged, event)
            else:
                rest.append(event)
        return [touched[0]], [merged, *build(visitor, rest)]
    stored: dict[int, SessionEvent] = {e.seq: e for e in events}
    for session in touched:
        for event_id, _, _, at, event_name, path, name, browser in tx.execute(
            select(*_EVENT_COLUMNS).where(
                Event.site_id == site_id,
                Event.occurred_at >= session.started_at,
                Event.occurred_at <= session.ended_at,
                Event.visitor_id == visitor,
                Event.id <= up_to_id,
                Event.counted(),
            )
        ):
            stored[event_id] = SessionEvent(at, event_id, event_name, path, name, bool(browser))
    return touched, build(visitor, list(stored.values()))


def catch_up(session: Session, deadline: float | None = None) -> int:
    """Bring the sessions up to the newest safe event (all sites), beginning no batch past
    `deadline` (time.monotonic(); a report's budget) when given; how many events were
    passed over."""
    return cursors.derive_in_two_phases(
        session, CURSOR, derive_changes, store_changes, deadline=deadline
    )


def rederive(
    tx: Session,
    site_id: int,
    start: datetime | None,
    end: datetime | None,
    up_to_id: int,
    excluding: ColumnElement[bool] | None = None,
) -> int:
    """Derive again the site's sessions that start in [start, end) (None: no bound) from
    its events up to `up_to_id` but those `excluding` selects (events about to be
    deleted), replacing the stored ones; in the caller's write transaction, which holds
    the cursor (at `up_to_id`). Returns the sessions stored.

    The events are read from GAP before `start` (a session starting in the span has no
    event within GAP before it) to QUIET after `end`, and further while a session starting
    in the span may go on past what was read.
    """
    read_from = None if start is None else start - GAP
    read_to = None if end is None else end + QUIET
    further = timedelta(hours=6)
    while True:
        found, complete = _sessions_starting(
            tx, site_id, (start, end), (read_from, read_to), up_to_id, excluding
        )
        if complete or read_to is None:
            break
        read_to, further = read_to + further, further * 2
    table = cast(Table, VisitorSession.__table__)
    where = [table.c.site_id == site_id]
    if start is not None:
        where.append(table.c.started_at >= start)
    if end is not None:
        where.append(table.c.started_at < end)
    # Every day from the first session replaced or made to the last one changes.
    low, high = tx.execute(
        select(func.min(table.c.started_at), func.max(table.c.started_at)).where(*where)
    ).one()
    starts = [moment for moment in (low, high) if moment is not None]
    starts += [state.started_at for state in found]
    if starts:
        session_days.bump_span(tx.connection(), site_id, min(starts), max(starts))
    tx.execute(delete(table).where(*where))
    insert_rows(tx, [to_row(site_id, state) for state in found])
    return len(found)


def _sessions_starting(
    tx: Session,
    site_id: int,
    span: tuple[datetime | None, datetime | None],
    read: tuple[datetime | None, datetime | None],
    up_to_id: int,
    excluding: ColumnElement[bool] | None,
) -> tuple[list[SessionState], bool]:
    """The sessions starting in `span` of the events read over `read`, and whether each is
    complete (no event of its visitor can follow within GAP past what was read)."""
    where = [
        Event.site_id == site_id,
        Event.id <= up_to_id,
        Event.visitor_id.not_like("a:%"),
        Event.counted(),
    ]
    if read[0] is not None:
        where.append(Event.occurred_at >= read[0])
    if read[1] is not None:
        where.append(Event.occurred_at < read[1])
    if excluding is not None:
        where.append(~excluding)
    per_visitor: dict[str, list[SessionEvent]] = defaultdict(list)
    for event_id, _, visitor, at, event_name, path, name, browser in tx.execute(
        select(*_EVENT_COLUMNS).where(*where)
    ):
        per_visitor[visitor].append(
            SessionEvent(at, event_id, event_name, path, name, bool(browser))
        )
    start, end = span
    found: list[SessionState] = []
    complete = True
    for visitor, events in per_visitor.items():
        for state in build(visitor, events):
            if (start is None or state.started_at >= start) and (
                end is None or state.started_at < end
            ):
                found.append(state)
                if read[1] is not None and state.ended_at + GAP >= read[1]:
                    complete = False
    return found, complete


def forget_deleted(
    tx: Session, site_id: int, where: ColumnElement[bool], first: datetime, until: datetime
) -> None:
    """Derive again, from the events left, the site's sessions that events about to be
    deleted (`where` selects them; they occurred in [first, until)) belong to: those that
    overlap [first, until), in the deleting transaction. A session across a retention
    cut-off keeps its events after it; one that had only deleted events goes."""
    t = VisitorSession.__table__.c
    low, high = tx.execute(
        select(func.min(t.started_at), func.max(t.ended_at)).where(
            t.site_id == site_id, t.started_at < until, t.ended_at >= first
        )
    ).one()
    if low is None:
        return
    position = tx.scalar(select(DerivedCursor.last_event_id).where(DerivedCursor.name == CURSOR))
    start, end = min(first, low), max(until, high + timedelta(microseconds=1))
    rederive(tx, site_id, start, end, position or 0, excluding=where)


def position(session: Session) -> int:
    """The last event id the sessions have taken (0 before the first)."""
    found = session.scalar(select(DerivedCursor.last_event_id).where(DerivedCursor.name == CURSOR))
    return int(found or 0)
