"""Fold new events into the report summaries, asynchronously from ingestion.

Ingestion only inserts events. A fold reads the events after the cursor (the last folded
`events.id`, one row in analytics_cursor), adds them into hourly rollups and visitor
sketches, and moves the cursor, in one transaction. Two folds never count the same events:
the cursor row carries a version that every fold and rebuild bumps with
``UPDATE … WHERE version = <the version read>``; a writer that finds it changed rolls
back and starts again. A host-wide file lock keeps the workers of one host from doing the
same work twice (other hosts are kept out by the version alone).

Ids and commit order: on SQLite there is one writer at a time and an id is taken inside
the writing transaction, so ids become visible in order. On PostgreSQL a sequence hands
out ids before the commit, so id 11 may be visible while id 10 is still being written. A
fold therefore stops before a gap in the ids while the event after it was received less
than GAP_WAIT ago (the missing one may still commit), and steps over an older gap (a
rolled-back insert, or a duplicate skipped by ON CONFLICT, which never appears). A gap is
also final at once when no write transaction is open in the database (``settled_id``).

Catch-up runs on a background thread in one server worker per host (``start_for``) and
before each report is read (``catch_up``), so events show within seconds. Late events
(up to 7 days back) land in their own hour like any other.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from flask import Flask
from sqlalchemy import Engine, String, delete, select, text, type_coerce, update

from ...ingest.schema import VALUE_SCALE
from ...models import Event, utcnow
from ...sql.connections import dialect_insert, write_lock
from .. import settled, sketches
from ..catch_up import TICK_SECONDS, catch_up_all, derivation_pending
from .models import (
    MAX_KEY,
    MAX_PAGE,
    MAX_VALUE,
    HourlyPage,
    HourlyProperty,
    HourlyRule,
    HourlyTotals,
    SummaryCursor,
    VisitorSketch,
)

if TYPE_CHECKING:  # annotations only: erasure calls this module, not the other way round
    from sqlalchemy.orm import Session

    from ...erasure import DeletedEvents

log = logging.getLogger(__name__)

BATCH = 5000
GAP_WAIT = timedelta(seconds=5)
INTERVAL_S = 1.0
# Seconds between two ticks while derivation work is left (at most the set interval).
BUSY_INTERVAL_S = 1.0
CURSOR = "events"
# Summary tables of a site, emptied by a rebuild.
SITE_TABLES = (HourlyTotals, HourlyRule, HourlyPage, HourlyProperty, VisitorSketch)
EVENT_COLUMNS = (
    Event.id,
    Event.site_id,
    Event.event_name,
    Event.name,
    Event.page_path,
    Event.visitor_id,
    Event.success_value_micros,
    Event.properties,
    Event.occurred_at,
    Event.received_at,
    # Read, not filtered in SQL: the fold's cursor must step over test events too, and a
    # filtered id would look like an uncommitted one.
    Event.is_test,
)


RECEIVED_AT = 9  # the position of received_at in a row of EVENT_COLUMNS


def fold_columns(dialect: str) -> tuple:
    """The event columns a fold reads; on SQLite the times stay text (parsed once per hour)."""
    if dialect != "sqlite":
        return EVENT_COLUMNS
    as_text = [type_coerce(Event.occurred_at, String), type_coerce(Event.received_at, String)]
    return (*EVENT_COLUMNS[:-3], *as_text, Event.is_test)


_KIND = {"pageview": 1, "click": 2, "custom": 3, "success": 4}


def is_visitor(visitor_id: str) -> bool:
    """A visitor is any id except the per-event anonymous ones ("a:…")."""
    return not visitor_id.startswith("a:")


def split_money(micros: int) -> tuple[int, int]:
    """Whole units and remaining millionths of an amount (their sum is exact)."""
    return divmod(micros, VALUE_SCALE)


def property_text(value: object) -> str:
    """A property value as the breakdown shows it (JSON spelling for non-strings)."""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    else:
        text = str(value)
    return text[:MAX_VALUE]


def _hour_of(occurred, cache: dict) -> tuple[datetime, datetime]:
    """The UTC hour and day of a stored time: a datetime, or SQLite's text (parsed once)."""
    if isinstance(occurred, datetime):
        hour = occurred.replace(minute=0, second=0, microsecond=0)
        return hour, hour.replace(hour=0)
    text = occurred[:13]
    found = cache.get(text)
    if found is None:
        hour = datetime.fromisoformat(text + ":00:00")
        found = cache[text] = (hour, hour.replace(hour=0))
    return found


@dataclass
class Accumulator:
    """Rollup deltas and visitor sketches of a set of events, keyed as their tables.

    Visitor ids are collected in sets per hour and dimension (cheap to add to) and turned
    into sketches by ``sketches_by_key``, or every FLUSH_EVERY events to bound memory.
    """

    totals: dict = field(default_factory=lambda: defaultdict(lambda: [0] * 8))
    rules: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    pages: dict = field(default_factory=lambda: defaultdict(int))
    properties: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0, 0]))
    visitors: dict = field(default_factory=lambda: defaultdict(set))
    sketches: dict = field(default_factory=dict)
    count: int = 0
    # False: keep only which (site, hour, dim) had visitors (visitor_keys), no sketches
    # (taking events out: their sketches are recomputed, see refresh_sketches).
    sketching: bool = True
    visitor_keys: set = field(default_factory=set)
    _hours: dict = field(default_factory=dict)

    FLUSH_EVERY = 200_000

    def add(self, row) -> None:
        """Add one event row (the columns of EVENT_COLUMNS); a test event adds nothing."""
        _id, site, kind, name, page, visitor, micros, props, occurred, _received, is_test = row
        if is_test:
            return
        hour, day = _hour_of(occurred, self._hours)
        page = page[:MAX_PAGE]
        success = kind == "success"
        units, rest = split_money(micros or 0) if success else (0, 0)
        totals = self.totals[(site, hour)]
        totals[0] += 1
        index = _KIND.get(kind)
        if index:
            totals[index] += 1
        totals[5] += units
        totals[6] += rest
        for span, start in ((1, hour), (24, day)):
            self.pages[(site, span, start, page)] += 1
            if success and name is not None:
                rule = self.rules[(site, span, start, name)]
                rule[0] += 1
                rule[1] += units
                rule[2] += rest
        if props:
            for key, value in orjson.loads(props).items():
                text = property_text(value)
                for span, start in ((1, hour), (24, day)):
                    prop = self.properties[(site, key[:MAX_KEY], span, start, text)]
                    prop[0] += 1
                    if success:
                        prop[1] += 1
                        prop[2] += units
                        prop[3] += rest
        if visitor[:2] != "a:":
            seen = self.visitors
            seen[(site, hour, "")].add(visitor)
            seen[(site, hour, "p:" + page)].add(visitor)
            if success:
                seen[(site, hour, "c")].add(visitor)
                if name is not None:
                    seen[(site, hour, "r:" + name)].add(visitor)
        else:
            totals[7] += 1
        self.count += 1
        if self.count % self.FLUSH_EVERY == 0:
            self._flush_visitors()

    def _flush_visitors(self) -> None:
        """Move the collected visitor ids into the hour, day and week sketches."""
        if not self.sketching:
            self.visitor_keys.update(self.visitors)
            self.visitors.clear()
            return
        found = self.sketches
        for (site, hour, dim), ids in self.visitors.items():
            day = hour.replace(hour=0)
            week = day - timedelta(days=day.weekday())
            for key in ((site, 1, dim, hour), (site, 24, dim, day), (site, 168, dim, week)):
                sketch = found.get(key)
                if sketch is None:
                    sketch = found[key] = sketches.new()
                for visitor in ids:
                    sketch.update(visitor)
        self.visitors.clear()

    def negate(self) -> None:
        """Turn every count and amount into its opposite (to take events out)."""
        for table in (self.totals, self.rules, self.properties):
            for counts in table.values():
                counts[:] = [-n for n in counts]
        for key in self.pages:
            self.pages[key] = -self.pages[key]

    def sketches_by_key(self) -> dict:
        """Every sketch filled so far, by (site, hours, dim, start)."""
        self._flush_visitors()
        return self.sketches


def _add_to_existing(table, keys: list[str], counts: list[str], dialect: str):
    """INSERT … ON CONFLICT DO UPDATE that adds the counts to an existing row."""
    statement = dialect_insert(table.__table__, dialect)
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: table.__table__.c[name] + statement.excluded[name] for name in counts},
    )


_MONEY = ["revenue_units", "revenue_rest"]
_TOTALS = ["events", "pageviews", "clicks", "custom", "conversions", *_MONEY, "without_visitor"]


def _write(connection, acc: Accumulator, stored_sketches: dict, dialect: str) -> None:
    """Add an accumulator's rollups to the tables and store its merged sketches (and move
    the settled generation on if settled buckets change: see analytics.settled)."""
    if acc.totals and settled.touches_settled(min(hour for _site, hour in acc.totals)):
        settled.bump(connection)
    if acc.totals:
        connection.execute(
            _add_to_existing(HourlyTotals, ["site_id", "hour"], _TOTALS, dialect),
            [
                {"site_id": s, "hour": h, **dict(zip(_TOTALS, v, strict=True))}
                for (s, h), v in acc.totals.items()
            ],
        )
    if acc.rules:
        names = ["conversions", *_MONEY]
        connection.execute(
            _add_to_existing(HourlyRule, ["site_id", "hours", "hour", "name"], names, dialect),
            [
                {"site_id": s, "hours": k, "hour": h, "name": n, **dict(zip(names, v, strict=True))}
                for (s, k, h, n), v in acc.rules.items()
            ],
        )
    if acc.pages:
        connection.execute(
            _add_to_existing(
                HourlyPage, ["site_id", "hours", "hour", "page_path"], ["events"], dialect
            ),
            [
                {"site_id": s, "hours": k, "hour": h, "page_path": p, "events": v}
                for (s, k, h, p), v in acc.pages.items()
            ],
        )
    if acc.properties:
        names = ["events", "conversions", *_MONEY]
        connection.execute(
            _add_to_existing(
                HourlyProperty, ["site_id", "key", "hours", "hour", "value"], names, dialect
            ),
            [
                {
                    "site_id": s,
                    "key": k,
                    "hours": n,
                    "hour": h,
                    "value": v,
                    **dict(zip(names, c, strict=True)),
                }
                for (s, k, n, h, v), c in acc.properties.items()
            ],
        )
    filled = acc.sketches_by_key()
    if filled:
        statement = dialect_insert(VisitorSketch.__table__, dialect)
        statement = statement.on_conflict_do_update(
            index_elements=["site_id", "hours", "dim", "start"],
            set_={"sketch": statement.excluded.sketch},
        )
        connection.execute(
            statement,
            [
                {
                    "site_id": s,
                    "hours": n,
                    "dim": d,
                    "start": t,
                    "sketch": sketches.combine(stored_sketches.get((s, n, d, t)), fresh),
                }
                for (s, n, d, t), fresh in filled.items()
            ],
        )


def _stored_sketches(connection, keys: list[tuple]) -> dict:
    """The stored bytes of the sketches with these keys (site, hours, dim, start).

    One query per site and span over the keys' time range and dimensions (a list of row
    values in IN was planned badly by PostgreSQL: about a second per fold).
    """
    wanted = set(keys)
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for site, hours, dim, start in keys:
        groups[(site, hours)].append((dim, start))
    found: dict = {}
    s = VisitorSketch
    for (site, hours), members in groups.items():
        dims = sorted({dim for dim, _ in members})
        low, high = min(t for _, t in members), max(t for _, t in members)
        for offset in range(0, len(dims), 500):
            rows = connection.execute(
                select(s.dim, s.start, s.sketch).where(
                    s.site_id == site,
                    s.hours == hours,
                    s.dim.in_(dims[offset : offset + 500]),
                    s.start >= low,
                    s.start <= high,
                )
            )
            for dim, start, data in rows:
                if (site, hours, dim, start) in wanted:
                    found[(site, hours, dim, start)] = data
    return found


def usable_prefix(
    rows: list, last_id: int, now: datetime, ordered_ids: bool, settled_id: int = 0
) -> list:
    """The rows a fold may take: all on SQLite; on PostgreSQL up to a young id gap.

    A gap before an id up to ``settled_id`` is final (see ``settled_id``); another one is
    waited for while the event after it is younger than GAP_WAIT.
    """
    if ordered_ids:
        return rows
    expected = last_id + 1
    for index, row in enumerate(rows):
        if row[0] != expected and row[0] > settled_id and row[RECEIVED_AT] > now - GAP_WAIT:
            return rows[:index]  # an id before this one may still commit
        expected = row[0] + 1
    return rows


# Write transactions open in this database now (each holds the lock on its own xid).
_OPEN_WRITERS = text(
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'transactionid' AND l.mode = 'ExclusiveLock' AND l.granted"
    " AND a.datname = current_database() AND l.pid <> pg_backend_pid()"
)
_LAST_ID = text("SELECT last_value FROM events_id_seq")


def settled_id(connection) -> int:
    """PostgreSQL: an id below which every gap is final (0 when that is not known).

    Read the sequence's last value first, then look for open write transactions: if there
    are none, every transaction that took an id up to that value has ended, so a missing
    id is a rolled-back insert or a duplicate that ON CONFLICT skipped. Duplicates leave
    such gaps all the time; without this each would hold the fold back for GAP_WAIT.
    """
    last = connection.execute(_LAST_ID).scalar() or 0
    if connection.execute(_OPEN_WRITERS).scalar():
        return 0
    return int(last)


class _HostLock:
    """Keeps this host's processes and threads from folding at the same moment."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.mutex = threading.Lock()
        self._fd: tuple[int, int] | None = None

    def __enter__(self) -> _HostLock:
        """Take the thread mutex, then the host-wide flock."""
        self.mutex.acquire()
        try:
            if self._fd is None or self._fd[0] != os.getpid():
                self._fd = (os.getpid(), os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            fcntl.flock(self._fd[1], fcntl.LOCK_EX)
        except BaseException:
            self.mutex.release()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        """Release both."""
        try:
            if self._fd is not None:  # set by __enter__
                fcntl.flock(self._fd[1], fcntl.LOCK_UN)
        finally:
            self.mutex.release()


_host_locks: dict[str, _HostLock] = {}


def _lock_path(engine: Engine, instance_path: str) -> str:
    """Beside the SQLite file, or in the instance folder for a server database."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        return database + ".analytics"
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return os.path.join(instance_path, "analytics.lock")


def host_lock(engine: Engine, instance_path: str) -> _HostLock:
    """The fold lock of this database on this host (one object per path and process)."""
    path = _lock_path(engine, instance_path)
    lock = _host_locks.get(path)
    if lock is None:
        lock = _host_locks.setdefault(path, _HostLock(path))
    return lock


def _read_cursor(connection) -> tuple[int, int]:
    """(last folded event id, version) of the cursor row."""
    last, version = connection.execute(
        select(SummaryCursor.last_event_id, SummaryCursor.version).where(
            SummaryCursor.name == CURSOR
        )
    ).one()
    return int(last), int(version)


def _claim(connection, version: int, last_id: int | None) -> bool:
    """Move the cursor (and bump its version) if nobody else did since we read it."""
    values: dict = {"version": version + 1, "updated_at": utcnow()}
    if last_id is not None:
        values["last_event_id"] = last_id
    result = connection.execute(
        update(SummaryCursor)
        .where(SummaryCursor.name == CURSOR, SummaryCursor.version == version)
        .values(**values)
    )
    return result.rowcount == 1


def fold_once(engine: Engine, batch: int = BATCH) -> int:
    """Fold one batch of new events (caller holds the host lock); return how many.

    Each read is a short transaction of its own: a snapshot held across the Python work
    would keep SQLite from restarting its WAL (see sql/wal_checkpoints.py), and every
    writer would pay for the longer WAL. The version check when writing makes the reads
    consistent: if another fold wrote in between, this one starts over.
    """
    dialect = engine.dialect.name
    with engine.connect() as connection:
        last_id, version = _read_cursor(connection)
        settled = settled_id(connection) if dialect == "postgresql" else 0
        rows = list(
            connection.execute(
                select(*fold_columns(dialect))
                .where(Event.id > last_id)
                .order_by(Event.id)
                .limit(batch)
            ).all()
        )
        connection.rollback()  # end the snapshot before the work
    rows = usable_prefix(rows, last_id, utcnow(), dialect == "sqlite", settled)
    if not rows:
        return 0
    acc = Accumulator()
    for row in rows:
        acc.add(row)
    keys = list(acc.sketches_by_key())
    with engine.connect() as connection:
        stored = _stored_sketches(connection, keys)
        connection.rollback()
    with write_lock(engine.dialect, engine.url.database), engine.begin() as connection:
        if not _claim(connection, version, rows[-1][0]):
            connection.rollback()
            return -1  # another host folded meanwhile: read again
        _write(connection, acc, stored, dialect)
    return len(rows)


def catch_up(
    engine: Engine, instance_path: str, max_batches: int | None = None, batch: int = BATCH
) -> int:
    """Fold until no event is pending (or max_batches were folded); return how many."""
    folded = 0
    batches = 0
    with host_lock(engine, instance_path):
        while max_batches is None or batches < max_batches:
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
        last_id, _ = _read_cursor(connection)
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
                last_id, version = _read_cursor(connection)
                after = 0
                while True:
                    rows = connection.execute(
                        select(*fold_columns(dialect))
                        .where(Event.site_id == site_id, Event.id > after, Event.id <= last_id)
                        .order_by(Event.id)
                        .limit(batch)
                    ).all()
                    if not rows:
                        break
                    for row in rows:
                        acc.add(row)
                    after = rows[-1][0]
                connection.rollback()
            with write_lock(engine.dialect, engine.url.database), engine.begin() as connection:
                if not _claim(connection, version, None):
                    connection.rollback()
                    continue
                for table in SITE_TABLES:
                    connection.execute(delete(table).where(table.site_id == site_id))
                settled.bump(connection)  # any bucket may change
                _write(connection, acc, {}, dialect)
            return acc.count


class Folder:
    """Folds new events every INTERVAL_S while it leads the host (into the summaries, then
    the sessions and saved funnels, so that a report's own catch-up stays small): in the
    foreground (`flask analytics fold`, which scripts/serve.sh runs beside the server at low
    priority, so that folding never takes CPU from the workers answering events), or on a
    thread."""

    def __init__(self, app: Flask, lead_path: str, interval: float = INTERVAL_S) -> None:
        self.app = app
        self.lead_path = lead_path
        self.interval = interval
        self.leading = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.run, name="datalook-analytics-fold", daemon=True
            )
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Wait for the host's lead (a folder that exits drops it), then fold until stopped."""
        fd = os.open(self.lead_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if self._stop.wait(1.0):
                        return
            self.leading.set()
            delay = self.interval
            while not self._stop.wait(delay):
                # Soon again while derivation work is left (a first derivation of a funnel
                # goes on over many bounded ticks); else at the set interval.
                delay = min(self.interval, BUSY_INTERVAL_S) if self._tick() else self.interval
        finally:
            self.leading.clear()
            os.close(fd)

    def _tick(self) -> bool:
        """One catch-up; whether derivation work is left for the next tick. A failure is
        logged and tried again on the next tick."""
        from ...extensions import db

        started = time.monotonic()
        try:
            with self.app.app_context():
                folded = catch_up(db.engine, self.app.instance_path)
                # Sessions and saved funnels too, so that a report's own catch-up is small;
                # within a budget, so that the next fold of the summaries is not held back.
                derived = catch_up_all(db.session(), TICK_SECONDS)
                more = derivation_pending(db.session())
                db.session.remove()
        except Exception:  # a database outage must not end the thread
            log.exception("analytics fold failed")
            self._stop.wait(5.0)
            return False
        if folded > BATCH or max(derived.values()) > BATCH:
            log.info(
                "analytics: folded %d events, derived %s in %.1f s",
                folded,
                derived,
                time.monotonic() - started,
            )
        return more


def folder_for(app: Flask) -> Folder | None:
    """The app's folder (not started); None for an app without a database.

    Any number may run on a host: one wins the lead, the others wait for it in case it
    exits.
    """
    config = getattr(app, "config", {})
    if not config.get("SQLALCHEMY_DATABASE_URI") or not hasattr(app, "extensions"):
        return None
    found = app.extensions.get("datalook_analytics_folder")
    if found is None:
        from ...extensions import db

        with app.app_context():
            lead = _lock_path(db.engine, app.instance_path) + "-lead"
        # ANALYTICS_FOLD_INTERVAL_S trades the writers' lock time per second (each fold's
        # write holds it for a few milliseconds) against how fresh unread summaries are.
        interval = float(config["ANALYTICS_FOLD_INTERVAL_S"])
        found = app.extensions["datalook_analytics_folder"] = Folder(app, lead, interval)
    return found


def start_for(app: Flask) -> Folder | None:
    """Start the app's folder on a thread of this process (once per app)."""
    found = folder_for(app)
    if found is not None:
        found.start()
    return found


def forget_deleted(session: Session, deleted: DeletedEvents) -> None:
    """Take events that are about to be deleted out of the rollups, in the deleting
    transaction (an erasure or a retention cut-off corrects the reports at once).

    Only events the fold has counted (id up to the cursor) are subtracted; the cursor's
    version moves on, so a fold that read the doomed events meanwhile on another host starts
    over without them. Counts and revenue are exact after this. Visitor sketches cannot
    forget one visitor (they hold hashed registers, no identifier): the sketches of the
    hours, days and weeks the deleted events touched are recomputed from the events that
    stay (``refresh_sketches``), so estimated visitors are right at once too.
    """
    if deleted.where is None or deleted.only_test:  # test events were never counted
        return
    connection = session.connection()
    dialect = connection.dialect.name
    last_id, version = _read_cursor(connection)
    taken = Accumulator(sketching=False)
    for row in connection.execute(
        select(*fold_columns(dialect)).where(deleted.where, Event.id <= last_id)
    ):
        taken.add(row)
    taken.sketches_by_key()  # collects the (site, hour, dim) keys, builds no sketch
    taken.negate()
    if not _claim(connection, version, None):
        raise RuntimeError("the report summaries changed meanwhile; try again")
    _write(connection, taken, {}, dialect)
    refresh_sketches(connection, taken.visitor_keys, deleted.where, last_id)


def _visitor_dims(kind: str, name: str | None, page: str) -> tuple[str, ...]:
    """The sketch dimensions one visitor's event counts in (as Accumulator.add keys them)."""
    dims: tuple[str, ...] = ("", "p:" + page[:MAX_PAGE])
    if kind == "success":
        dims += ("c",) if name is None else ("c", "r:" + name)
    return dims


def _runs(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours as [start, end) runs of consecutive hours."""
    out: list[list[datetime]] = []
    for hour in hours:
        if out and out[-1][1] == hour:
            out[-1][1] = hour + timedelta(hours=1)
        else:
            out.append([hour, hour + timedelta(hours=1)])
    return [(a, b) for a, b in out]


def _put_sketch(connection, key: tuple, data: bytes | None) -> None:
    """Store one sketch (site, hours, dim, start), or delete it when `data` is None."""
    site, hours, dim, start = key
    s = VisitorSketch
    if data is None:
        connection.execute(
            delete(s).where(s.site_id == site, s.hours == hours, s.dim == dim, s.start == start)
        )
        return
    statement = dialect_insert(s.__table__, connection.dialect.name)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["site_id", "hours", "dim", "start"],
            set_={"sketch": statement.excluded.sketch},
        ),
        {"site_id": site, "hours": hours, "dim": dim, "start": start, "sketch": data},
    )


def _merged_span(connection, site: int, hours: int, dim: str, start: datetime, end: datetime):
    """The union of a dimension's stored sketches of one span size in [start, end)."""
    s = VisitorSketch
    stored = connection.execute(
        select(s.sketch).where(
            s.site_id == site, s.hours == hours, s.dim == dim, s.start >= start, s.start < end
        )
    ).scalars()
    found = list(stored)
    return sketches.union(found) if found else None


def refresh_sketches(connection, keys: set, gone, last_id: int) -> None:
    """Recompute the visitor sketches of `keys` ((site, hour, dim)), of their days and of
    their weeks, from the counted events up to `last_id` that `gone` (SQL: the events being
    deleted, still readable) does not select.

    Hours are counted again from their raw events (a bounded read: the hours the deleted
    events fell in); a day is the union of its hour sketches and a week of its day sketches,
    which HyperLogLog gives exactly (a union keeps the larger of each register).
    """
    if not keys:
        return
    dialect = connection.dialect.name
    by_site: dict[int, set] = defaultdict(set)
    for site, hour, dim in keys:
        by_site[site].add((hour, dim))
    for site, wanted in by_site.items():
        hours = sorted({hour for hour, _dim in wanted})
        seen: dict[tuple, set] = defaultdict(set)
        cache: dict = {}
        occurred = fold_columns(dialect)[8]
        for start, end in _runs(hours):
            rows = connection.execute(
                select(Event.visitor_id, Event.event_name, Event.name, Event.page_path, occurred)
                .where(Event.site_id == site, Event.occurred_at >= start, Event.occurred_at < end)
                .where(Event.id <= last_id, Event.counted(), Event.visitor_id.not_like("a:%"))
                .where(~gone)
            )
            for visitor, kind, name, page, at in rows:
                hour = _hour_of(at, cache)[0]
                for dim in _visitor_dims(kind, name, page):
                    if (hour, dim) in wanted:
                        seen[(hour, dim)].add(visitor)
        for hour, dim in wanted:
            ids = seen.get((hour, dim))
            _put_sketch(connection, (site, 1, dim, hour), sketches.of_ids(ids) if ids else None)
        days = {(hour.replace(hour=0), dim) for hour, dim in wanted}
        for day, dim in days:
            merged = _merged_span(connection, site, 1, dim, day, day + timedelta(days=1))
            _put_sketch(connection, (site, 24, dim, day), merged)
        weeks = {(day - timedelta(days=day.weekday()), dim) for day, dim in days}
        for week, dim in weeks:
            merged = _merged_span(connection, site, 24, dim, week, week + timedelta(days=7))
            _put_sketch(connection, (site, 168, dim, week), merged)
