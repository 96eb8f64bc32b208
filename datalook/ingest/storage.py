"""Durable storage of validated events: one transaction, deduplicated, then acknowledged.

This is the hottest path of the product, so it runs statements compiled once (fastsql) on
the request's raw DB-API connection instead of an ORM session.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime
from typing import cast

import orjson
from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect

from ..apikeys import AuthenticatedKey
from ..models import Event as EventRow
from ..models import SuccessRule
from ..sql.compiled import CompiledStatement, StatementCache
from ..sql.connections import insert_ignoring_conflicts, write_lock
from .schema import Event

_events = cast(Table, EventRow.__table__)
_rules = cast(Table, SuccessRule.__table__)
_COLUMNS = [c.name for c in _events.columns if c.name != "id"]

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
    }
)

# Success rule names already registered, per process and database: only a new name costs
# a write.
_known_rules: set[tuple[str | None, int, str]] = set()
_known_lock = threading.Lock()


def _json_text(value: object) -> str:
    """Compact JSON text; integers beyond 64 bits (which orjson refuses) via the stdlib."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _row(key: AuthenticatedKey, event: Event, received_at: datetime) -> dict:
    """Map a validated event to its table row."""
    return {
        "site_id": key.site_id,
        "api_key_id": key.id,
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
    }


def store(
    connection,
    dialect: Dialect,
    database: str | None,
    key: AuthenticatedKey,
    events: list[Event],
    received_at: datetime,
) -> list[bool]:
    """Store events in one transaction on a DB-API connection; return duplicate flags.

    Returns only after the commit: an event reported as stored is in the database. On any
    error the transaction is rolled back and the error propagates.
    """
    duplicate = [False] * len(events)
    first_index: dict[str, int] = {}
    plain_rows: list[dict] = []
    keyed: list[tuple[int, dict]] = []
    for index, event in enumerate(events):
        if event.event_id is None:
            plain_rows.append(_row(key, event, received_at))
        elif event.event_id in first_index:  # repeated inside one batch
            duplicate[index] = True
        else:
            first_index[event.event_id] = index
            keyed.append((index, _row(key, event, received_at)))

    # Conversions happen before the lock: every microsecond inside it is one that every
    # other writer of the database waits.
    insert = _STATEMENTS.get("insert", dialect)
    plain_bound = insert.bind(plain_rows) if plain_rows else []
    idempotent = _STATEMENTS.get("insert_idempotent", dialect)
    keyed_bound = [(index, idempotent.params(row)) for index, row in keyed]
    with write_lock(dialect, database):
        cursor = connection.cursor()
        try:
            if plain_bound:
                insert.execute_bound(cursor, plain_bound)
            for index, bound in keyed_bound:
                cursor.execute(idempotent.sql, bound)
                duplicate[index] = cursor.fetchone() is None
            new_rules = _new_rules(database, key, events, duplicate, received_at)
            if new_rules:
                _STATEMENTS.get("register_rule", dialect).executemany(cursor, new_rules)
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            cursor.close()
    with _known_lock:
        _known_rules.update((database, rule["site_id"], rule["name"]) for rule in new_rules)
    return duplicate


def _new_rules(
    database: str | None,
    key: AuthenticatedKey,
    events: list[Event],
    duplicate: list[bool],
    now: datetime,
) -> list[dict]:
    """Success rule names this process has not registered yet."""
    names = {
        event.name
        for event, dup in zip(events, duplicate, strict=True)
        if event.event_name == "success"
        and not dup
        and (database, key.site_id, event.name) not in _known_rules
    }
    return [
        {"site_id": key.site_id, "name": name, "first_seen_at": now}
        for name in sorted(name for name in names if name is not None)
    ]
