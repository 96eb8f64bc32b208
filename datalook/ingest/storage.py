"""Durable storage of validated events: one transaction, deduplicated, then acknowledged.

This is the hottest path of the product, so it runs statements compiled once (fastsql) on
the request's raw DB-API connection instead of an ORM session.
"""

from __future__ import annotations

import json
import operator
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import orjson
from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect

from ..keys.authentication import AuthenticatedKey
from ..models import (
    ACQUISITION_LENGTHS,
    LINK_FROM_BROWSER,
    LINK_FROM_SERVER,
    RULE_FROM_BROWSER,
    RULE_FROM_SERVER,
    RULE_FROM_TEST,
    Site,
    SuccessRule,
)
from ..models import Event as EventRow
from ..sql.compiled import CompiledStatement, StatementCache
from ..sql.connections import dialect_insert, insert_ignoring_conflicts
from . import group_commit, links
from .schema import Event

_events = cast(Table, EventRow.__table__)
_rules = cast(Table, SuccessRule.__table__)
_sites = cast(Table, Site.__table__)
_COLUMNS = [c.name for c in _events.columns if c.name != "id"]

_STATEMENTS = StatementCache(
    {
        "insert": lambda d: CompiledStatement(insert(_events), d, _COLUMNS),
        # A repeated event_id inserts nothing and returns no row: that is a duplicate. The
        # same id from a browser and from a server are two events (from_browser differs).
        "insert_idempotent": lambda d: CompiledStatement(
            insert_ignoring_conflicts(
                _events,
                ["site_id", "event_id", "from_browser"],
                d.name,
                index_where=_events.c.event_id.is_not(None),  # the partial unique index
            ).returning(_events.c.id),
            d,
            _COLUMNS,
        ),
        # A new name, or a test-only name that a live event now uses (seen from now on).
        "put_rule": lambda d: _put_rule(d),
        "promote_rule": lambda d: CompiledStatement(
            update(_rules)
            .where(
                _rules.c.site_id == bindparam("rule_site"), _rules.c.name == bindparam("rule_name")
            )
            .values(origin=bindparam("new_origin")),
            d,
        ),
        "rule_origin": lambda d: CompiledStatement(
            select(_rules.c.origin).where(
                _rules.c.site_id == bindparam("site_id"), _rules.c.name == bindparam("name")
            ),
            d,
        ),
        "rule_counts": lambda d: CompiledStatement(
            select(_rules.c.origin, func.count())
            .where(_rules.c.site_id == bindparam("site_id"))
            .group_by(_rules.c.origin),
            d,
        ),
        # New rules of one site are admitted one transaction at a time (the site's row lock
        # on PostgreSQL; SQLite's writers are serial already), so the cap is exact.
        "lock_site": lambda d: CompiledStatement(
            select(_sites.c.id).where(_sites.c.id == bindparam("site_id")).with_for_update(), d
        ),
    }
)


def _put_rule(dialect: Dialect) -> CompiledStatement:
    """INSERT a rule name, or make an existing one the given origin, seen from `now`."""
    statement = dialect_insert(_rules, dialect.name)
    return CompiledStatement(
        statement.on_conflict_do_update(
            index_elements=["site_id", "name"],
            set_={
                "origin": statement.excluded.origin,
                "first_seen_at": statement.excluded.first_seen_at,
            },
        ),
        dialect,
        ["site_id", "name", "first_seen_at", "origin"],
    )


# What store() says of each event (TOO_MANY_RULES: over its sender's cap, see rule_cap).
STORED, DUPLICATE, TOO_MANY_RULES = "stored", "duplicate", "too_many_rules"
# Distinct success rules a site may have: each is a row on every report, so one key must not
# be able to create them without end. A new name beyond its sender's cap refuses its event.
# The caps are apart, so that no sender can use up another's: names registered by a
# backend's live keys; names first sent by browsers (anyone can send those: the site key is
# public); names sent only with test keys (listed in no report, gone with the test events).
MAX_RULES_PER_SITE = 1000
MAX_BROWSER_RULES_PER_SITE = 100
MAX_TEST_RULES_PER_SITE = 1000
# A name belongs to the most trusted sender that has used it (within that sender's cap).
_RANK = {RULE_FROM_TEST: 0, RULE_FROM_BROWSER: 1, RULE_FROM_SERVER: 2}
# Success rule names known to be registered, per process and database, with the rank up to
# which a sender may use them without admission, so that only a new name (or a name new to
# a more trusted sender) costs a look-up; bounded (least recently used out) so no process
# grows without end.
KNOWN_RULES_CACHED = 10_000
_known_rules: OrderedDict[tuple[str | None, int, str], int] = OrderedDict()
_known_lock = threading.Lock()


def _json_text(value: object) -> str:
    """Compact JSON text; integers beyond 64 bits (which orjson refuses) via the stdlib."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Source:
    """Who sent events: a site, the API key (None for a browser's /collect), whether they
    are test events (a dl_test_ key's: stored, shown live, never in a report), and whether
    a browser sent them (anyone may: their event ids and rule names are kept apart)."""

    site_id: int
    api_key_id: int | None
    is_test: bool = False
    from_browser: bool = False

    @classmethod
    def of_key(cls, key: AuthenticatedKey) -> Source:
        """The source of an authenticated backend's events."""
        return cls(key.site_id, key.id, key.is_test)

    @classmethod
    def browser(cls, site_id: int) -> Source:
        """The source of a browser's events (POST /collect): no API key."""
        return cls(site_id, None, from_browser=True)

    @property
    def rule_origin(self) -> str:
        """Who registers the success rule names this source sends first."""
        if self.from_browser:
            return RULE_FROM_BROWSER
        return RULE_FROM_TEST if self.is_test else RULE_FROM_SERVER


# The columns a stored event fills from itself, in this order (ROW_VALUES' tuple), and
# those every event of one store() shares (its source and time of receipt).
_OWN_COLUMNS = (
    "event_name",
    "name",
    "page_path",
    "visitor_id",
    "success_user_id",
    "success_value_micros",
    "properties",
    "stripped_keys",
    "event_id",
    "occurred_at",
    "anonymous_id",
    *ACQUISITION_LENGTHS,
)
_acquired = operator.itemgetter(*ACQUISITION_LENGTHS)
_NONE_ACQUIRED = (None,) * len(ACQUISITION_LENGTHS)


def _shared(key: Source, received_at: datetime) -> dict:
    """The values of the columns that every event of one store() shares."""
    return {
        "site_id": key.site_id,
        "api_key_id": key.api_key_id,
        "received_at": received_at,
        "is_test": key.is_test,
        "from_browser": key.from_browser,
    }


def _row(key: Source, event: Event, acquired: dict[int, tuple]) -> tuple:
    """A validated event's own values (_OWN_COLUMNS); `acquired` keeps the acquisition
    columns of each derived dict of the batch (most events share one)."""
    acquisition = event.acquisition
    if not acquisition:
        columns = _NONE_ACQUIRED
    else:
        columns = acquired.get(id(acquisition))  # type: ignore[assignment]
        if columns is None:
            try:
                columns = _acquired(acquisition)
            except KeyError:  # a column it does not name is NULL
                columns = tuple(acquisition.get(name) for name in ACQUISITION_LENGTHS)
            acquired[id(acquisition)] = columns
    return (
        event.event_name,
        event.name,
        event.page_path,
        event.visitor_id,
        event.success_user_id,
        event.value_micros,
        _json_text(event.properties) if event.properties else None,
        _json_text(event.stripped_keys) if event.stripped_keys else None,
        event.event_id,
        event.occurred_at,
        event.anonymous_id if key.from_browser else None,
        *columns,
    )


def _bound(
    statement: CompiledStatement, shared: dict, rows: list[tuple[int, tuple]]
) -> tuple[CompiledStatement, list[tuple[int, tuple | dict]]]:
    """The statement to run (`statement`, or its variant without the columns that are NULL
    in every row) and each (index, row)'s driver parameters for it, with the shared values."""
    if not rows:
        return statement, []
    chosen, bound = statement.sparse_binder(_OWN_COLUMNS, shared)([row for _, row in rows])
    return chosen, list(zip((index for index, _ in rows), bound, strict=True))


def _links(key: Source, events: list[Event], outcome: list[str]) -> list[tuple[str, str, str]]:
    """The links these stored events make (test keys' events make none: they never count)."""
    if key.is_test:
        return []
    found = []
    for event, state in zip(events, outcome, strict=True):
        if state != STORED or event.success_user_id is None:
            continue
        if key.from_browser and event.anonymous_id is not None:
            found.append((event.anonymous_id, event.success_user_id, LINK_FROM_BROWSER))
        elif not key.from_browser and event.joins is not None:
            found.append((event.joins, event.success_user_id, LINK_FROM_SERVER))
    return found


@dataclass(slots=True)
class _Write:
    """One store() call's events, prepared outside the writers' lock (rows converted for
    the driver), for the transaction that writes them (alone or in a group commit)."""

    dialect: Dialect
    key: Source
    events: list[Event]
    received_at: datetime
    outcome: list[str]  # STORED, or DUPLICATE of an id repeated inside the call
    new_names: set[str]
    plain: list[tuple[int, tuple | dict]]  # (index, bound row) of events without an id
    keyed: list[tuple[int, tuple | dict]]  # (index, bound row) of events with an id
    plain_insert: CompiledStatement  # the statements of those rows (their NULL columns out)
    keyed_insert: CompiledStatement


def _prepare(
    dialect: Dialect, database: str | None, key: Source, events: list[Event], at: datetime
) -> _Write:
    """Everything of a write that needs no lock: rows, in-call duplicates, unknown names."""
    outcome = [STORED] * len(events)
    first_index: dict[str, int] = {}
    plain: list[tuple[int, tuple]] = []
    keyed: list[tuple[int, tuple]] = []
    acquired: dict[int, tuple] = {}
    for index, event in enumerate(events):
        if event.event_id is None:
            plain.append((index, _row(key, event, acquired)))
        elif event.event_id in first_index:  # repeated inside one batch
            outcome[index] = DUPLICATE
        else:
            first_index[event.event_id] = index
            keyed.append((index, _row(key, event, acquired)))
    new_names = _unknown_rule_names(database, key, events, outcome)
    # Conversions happen before the lock: every microsecond inside it is one that every
    # other writer of the database waits.
    shared = _shared(key, at)
    plain_insert, plain_bound = _bound(_STATEMENTS.get("insert", dialect), shared, plain)
    keyed_insert, keyed_bound = _bound(_STATEMENTS.get("insert_idempotent", dialect), shared, keyed)
    return _Write(
        dialect,
        key,
        events,
        at,
        outcome,
        new_names,
        plain_bound,
        keyed_bound,
        plain_insert,
        keyed_insert,
    )


def _run(cursor, writes: list[_Write]) -> list[tuple[list[str], dict[str, int]]]:
    """Write the calls' events in the caller's transaction: each call's outcome and the
    rule names it admitted. The rows without an id of consecutive calls that share their
    statement go in one driver call."""
    results = []
    plain: list[tuple[CompiledStatement, list]] = []  # (statement, rows), in call order
    for write in writes:
        outcome = list(write.outcome)  # a batch may be run again: start from the prepared
        admitted: dict[str, int] = {}
        if write.new_names:
            admitted = _admit_rules(
                cursor, write.dialect, write.key, write.new_names, write.received_at
            )
            for index, event in enumerate(write.events):
                if event.name in write.new_names and event.name not in admitted:
                    outcome[index] = TOO_MANY_RULES
        rows = [bound for index, bound in write.plain if outcome[index] == STORED]
        if rows and plain and plain[-1][0] is write.plain_insert:
            plain[-1][1].extend(rows)
        elif rows:
            plain.append((write.plain_insert, rows))
        results.append((outcome, admitted))
    for statement, rows in plain:
        statement.execute_bound(cursor, rows)
    for write, (outcome, _) in zip(writes, results, strict=True):
        if write.keyed:
            idempotent = write.keyed_insert
            for index, bound in write.keyed:
                if outcome[index] == STORED:
                    cursor.execute(idempotent.sql, bound)
                    if cursor.fetchone() is None:
                        outcome[index] = DUPLICATE
        made = _links(write.key, write.events, outcome)
        if made:
            links.record(cursor, write.dialect, write.key.site_id, made, write.received_at)
    return results


def _grouped(dialect: Dialect, database: str | None) -> bool:
    """Whether writes to this database go through a group commit: a SQLite file, whose
    path names it within the process (in-memory databases are one per connection)."""
    return dialect.name == "sqlite" and bool(database) and database != ":memory:"


def store(
    connection,
    dialect: Dialect,
    database: str | None,
    key: Source,
    events: list[Event],
    received_at: datetime,
    grouped: bool = False,
) -> list[str]:
    """Store events in one transaction on a DB-API connection; return each one's outcome
    (STORED, DUPLICATE, or TOO_MANY_RULES: refused, nothing stored for it).

    Returns only after the commit: an event reported as stored is in the database. On any
    error the transaction is rolled back and the error propagates. With `grouped` (a worker
    serving several threads), on a SQLite file the transaction may hold the writes of other
    requests of this process too (group_commit).
    """
    write = _prepare(dialect, database, key, events, received_at)
    if grouped and _grouped(dialect, database):
        group = group_commit.for_database(dialect, database, _run)
        outcome, admitted = group.submit(connection, write)
    else:
        ((outcome, admitted),) = group_commit.committed(
            connection, dialect, database, _run, [write]
        )
    if admitted:
        _remember_rules(database, key.site_id, admitted)
    return outcome


def _unknown_rule_names(
    database: str | None, key: Source, events: list[Event], outcome: list[str]
) -> set[str]:
    """Success rule names of these events that this process has not seen registered for
    a sender as trusted as this one."""
    rank = _RANK[key.rule_origin]
    with _known_lock:
        return {
            event.name
            for event, state in zip(events, outcome, strict=True)
            if event.event_name == "success"
            and event.name is not None
            and state == STORED
            and _known_rules.get((database, key.site_id, event.name), -1) < rank
        }


def _cap(origin: str) -> int:
    """How many names of this origin a site may have (read when used: tests change them)."""
    if origin == RULE_FROM_BROWSER:
        return MAX_BROWSER_RULES_PER_SITE
    return MAX_TEST_RULES_PER_SITE if origin == RULE_FROM_TEST else MAX_RULES_PER_SITE


def _admit_rules(
    cursor, dialect: Dialect, key: Source, names: set[str], now: datetime
) -> dict[str, int]:
    """Register new rule names, each within its sender's cap; return the names that may be
    used (already registered, or registered now), each with the rank up to which senders
    need no admission for it. Runs inside the caller's transaction.

    A name already registered by a less trusted sender becomes this sender's, within this
    sender's cap (a test-only name is then seen from now on). A backend's live event with a
    browser's name is accepted even when the backend's cap is full: the name is listed
    already, and stays the browsers' (whose cap bounds it).
    """
    site_id, origin = key.site_id, key.rule_origin
    rank = _RANK[origin]
    params = {"site_id": site_id}
    _STATEMENTS.get("lock_site", dialect).execute(cursor, params).fetchall()
    counts = dict(_STATEMENTS.get("rule_counts", dialect).execute(cursor, params).fetchall())
    held_by = _STATEMENTS.get("rule_origin", dialect)
    put = _STATEMENTS.get("put_rule", dialect)
    admitted = {}
    for name in sorted(names):
        row = held_by.execute(cursor, {"site_id": site_id, "name": name}).fetchone()
        held = row[0] if row is not None else None
        if held is not None and _RANK[held] >= rank:
            admitted[name] = _RANK[held]
        elif counts.get(origin, 0) < _cap(origin):
            if held == RULE_FROM_BROWSER:  # listed already: it keeps its first sight
                _STATEMENTS.get("promote_rule", dialect).execute(
                    cursor, {"rule_site": site_id, "rule_name": name, "new_origin": origin}
                )
            else:
                put.execute(
                    cursor,
                    {"site_id": site_id, "name": name, "first_seen_at": now, "origin": origin},
                )
            counts[origin] = counts.get(origin, 0) + 1
            if held is not None:
                counts[held] -= 1
            admitted[name] = rank
        elif held == RULE_FROM_BROWSER:
            admitted[name] = rank  # the backend's cap is full: accepted, still the browsers'
    return admitted


def _remember_rules(database: str | None, site_id: int, names: dict[str, int]) -> None:
    """Note registered rule names (with their rank) in the bounded per-process cache."""
    with _known_lock:
        for name, rank in names.items():
            _known_rules[(database, site_id, name)] = rank
            _known_rules.move_to_end((database, site_id, name))
        while len(_known_rules) > KNOWN_RULES_CACHED:
            _known_rules.popitem(last=False)


def rule_cap(key: Source) -> dict:
    """The field error of a success event whose new rule name is over its sender's cap."""
    if key.from_browser:
        return {
            "field": "name",
            "code": "too_many_browser_rules",
            "message": (
                f"this site already has {MAX_BROWSER_RULES_PER_SITE} success rules first sent "
                "from browsers, the maximum for browsers; use one of them, or send this "
                "conversion from your backend (POST /event)"
            ),
        }
    if key.is_test:
        message = (
            f"this site already has {MAX_TEST_RULES_PER_SITE} success rules sent only with "
            "test keys, the maximum for them; use one of them, or clear the test events "
            "(which removes those rules)"
        )
    else:
        message = (
            f"this site already has {MAX_RULES_PER_SITE} success rules from its backend, the "
            "maximum; use one of them"
        )
    return {"field": "name", "code": "too_many_rules", "message": message}
