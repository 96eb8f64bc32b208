"""Durable storage of validated events: one transaction, deduplicated, then acknowledged.

This is the hottest path of the product, so it runs statements compiled once (fastsql) on
the request's raw DB-API connection instead of an ORM session.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import cast

import orjson
from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.engine import Dialect

from ..keys.authentication import AuthenticatedKey
from ..models import ACQUISITION_LENGTHS, Site, SuccessRule
from ..models import Event as EventRow
from ..sql.compiled import CompiledStatement, StatementCache
from ..sql.connections import insert_ignoring_conflicts, write_lock
from .schema import Event

_events = cast(Table, EventRow.__table__)
_rules = cast(Table, SuccessRule.__table__)
_sites = cast(Table, Site.__table__)
_COLUMNS = [c.name for c in _events.columns if c.name != "id"]
# An event stored without derived acquisition columns: NULL, "(not recorded)".
_NOT_RECORDED = dict.fromkeys(ACQUISITION_LENGTHS)

_STATEMENTS = StatementCache(
    {
        "insert": lambda d: CompiledStatement(insert(_events), d, _COLUMNS),
        # A repeated event_id inserts nothing and returns no row: that is a duplicate.
        "insert_idempotent": lambda d: CompiledStatement(
            insert_ignoring_conflicts(
                _events,
                ["site_id", "event_id"],
                d.name,
                index_where=_events.c.event_id.is_not(None),  # the partial unique index
            ).returning(_events.c.id),
            d,
            _COLUMNS,
        ),
        "register_rule": lambda d: CompiledStatement(
            insert_ignoring_conflicts(_rules, ["site_id", "name"], d.name),
            d,
            ["site_id", "name", "first_seen_at"],
        ),
        "rule_exists": lambda d: CompiledStatement(
            select(_rules.c.id).where(
                _rules.c.site_id == bindparam("site_id"), _rules.c.name == bindparam("name")
            ),
            d,
        ),
        "rule_count": lambda d: CompiledStatement(
            select(func.count()).where(_rules.c.site_id == bindparam("site_id")), d
        ),
        # New rules of one site are admitted one transaction at a time (the site's row lock
        # on PostgreSQL; SQLite's writers are serial already), so the cap is exact.
        "lock_site": lambda d: CompiledStatement(
            select(_sites.c.id).where(_sites.c.id == bindparam("site_id")).with_for_update(), d
        ),
    }
)

# What store() says of each event.
STORED, DUPLICATE, TOO_MANY_RULES = "stored", "duplicate", "too_many_rules"
# Distinct success rules a site may have: each is a row on every report, so one key must not
# be able to create them without end. A new name beyond this refuses its event.
MAX_RULES_PER_SITE = 1000
# Success rule names known to be registered, per process and database, so that only a new
# name costs a look-up; bounded (least recently used out) so no process grows without end.
KNOWN_RULES_CACHED = 10_000
_known_rules: OrderedDict[tuple[str | None, int, str], None] = OrderedDict()
_known_lock = threading.Lock()


def _json_text(value: object) -> str:
    """Compact JSON text; integers beyond 64 bits (which orjson refuses) via the stdlib."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Source:
    """Who sent events: a site, the API key (None for a browser's /collect), and whether
    they are test events (a dl_test_ key's: stored, shown live, never in a report)."""

    site_id: int
    api_key_id: int | None
    is_test: bool = False

    @classmethod
    def of_key(cls, key: AuthenticatedKey) -> Source:
        """The source of an authenticated backend's events."""
        return cls(key.site_id, key.id, key.is_test)


def _row(key: Source, event: Event, received_at: datetime) -> dict:
    """Map a validated event to its table row."""
    return {
        "site_id": key.site_id,
        "api_key_id": key.api_key_id,
        "event_name": event.event_name,
        "name": event.name,
        "page_path": event.page_path,
        "visitor_id": event.visitor_id,
        "success_user_id": event.success_user_id,
        "success_value_micros": event.value_micros,
        "properties": _json_text(event.properties) if event.properties else None,
        "stripped_keys": _json_text(event.stripped_keys) if event.stripped_keys else None,
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "received_at": received_at,
        "is_test": key.is_test,
        **(event.acquisition or _NOT_RECORDED),
    }


def store(
    connection,
    dialect: Dialect,
    database: str | None,
    key: Source,
    events: list[Event],
    received_at: datetime,
) -> list[str]:
    """Store events in one transaction on a DB-API connection; return each one's outcome
    (STORED, DUPLICATE, or TOO_MANY_RULES: refused, nothing stored for it).

    Returns only after the commit: an event reported as stored is in the database. On any
    error the transaction is rolled back and the error propagates.
    """
    outcome = [STORED] * len(events)
    first_index: dict[str, int] = {}
    plain: list[tuple[int, dict]] = []
    keyed: list[tuple[int, dict]] = []
    for index, event in enumerate(events):
        if event.event_id is None:
            plain.append((index, _row(key, event, received_at)))
        elif event.event_id in first_index:  # repeated inside one batch
            outcome[index] = DUPLICATE
        else:
            first_index[event.event_id] = index
            keyed.append((index, _row(key, event, received_at)))
    new_names = _unknown_rule_names(database, key.site_id, events, outcome)

    # Conversions happen before the lock: every microsecond inside it is one that every
    # other writer of the database waits.
    insert = _STATEMENTS.get("insert", dialect)
    plain_bound = list(zip((i for i, _ in plain), insert.bind([r for _, r in plain]), strict=True))
    idempotent = _STATEMENTS.get("insert_idempotent", dialect)
    keyed_bound = [(index, idempotent.params(row)) for index, row in keyed]
    admitted: set[str] = set()
    with write_lock(dialect, database):
        cursor = connection.cursor()
        try:
            if new_names:
                admitted = _admit_rules(cursor, dialect, key.site_id, new_names, received_at)
                for index, event in enumerate(events):
                    if event.name in new_names and event.name not in admitted:
                        outcome[index] = TOO_MANY_RULES
            rows = [bound for index, bound in plain_bound if outcome[index] == STORED]
            if rows:
                insert.execute_bound(cursor, rows)
            for index, bound in keyed_bound:
                if outcome[index] == STORED:
                    cursor.execute(idempotent.sql, bound)
                    if cursor.fetchone() is None:
                        outcome[index] = DUPLICATE
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()
    if admitted:
        _remember_rules(database, key.site_id, admitted)
    return outcome


def _unknown_rule_names(
    database: str | None, site_id: int, events: list[Event], outcome: list[str]
) -> set[str]:
    """Success rule names of these events that this process has not seen registered."""
    with _known_lock:
        return {
            event.name
            for event, state in zip(events, outcome, strict=True)
            if event.event_name == "success"
            and event.name is not None
            and state == STORED
            and (database, site_id, event.name) not in _known_rules
        }


def _admit_rules(
    cursor, dialect: Dialect, site_id: int, names: set[str], now: datetime
) -> set[str]:
    """Register new rule names within the site's cap; return the names that may be used
    (already registered, or registered now). Runs inside the caller's transaction."""
    params = {"site_id": site_id}
    _STATEMENTS.get("lock_site", dialect).execute(cursor, params).fetchall()
    count = _STATEMENTS.get("rule_count", dialect).execute(cursor, params).fetchone()[0]
    exists = _STATEMENTS.get("rule_exists", dialect)
    register = _STATEMENTS.get("register_rule", dialect)
    admitted = set()
    for name in sorted(names):
        if exists.execute(cursor, {"site_id": site_id, "name": name}).fetchone() is not None:
            admitted.add(name)
        elif count < MAX_RULES_PER_SITE:
            register.executemany(cursor, [{"site_id": site_id, "name": name, "first_seen_at": now}])
            count += 1
            admitted.add(name)
    return admitted


def _remember_rules(database: str | None, site_id: int, names: set[str]) -> None:
    """Note registered rule names in the bounded per-process cache."""
    with _known_lock:
        for name in names:
            _known_rules[(database, site_id, name)] = None
            _known_rules.move_to_end((database, site_id, name))
        while len(_known_rules) > KNOWN_RULES_CACHED:
            _known_rules.popitem(last=False)


def rule_cap() -> dict:
    """The field error of a success event whose new rule name is over the site's cap."""
    return {
        "field": "name",
        "code": "too_many_rules",
        "message": (
            f"this site already has {MAX_RULES_PER_SITE} success rules, the maximum; "
            "use one of them, or archive rules you no longer need"
        ),
    }
