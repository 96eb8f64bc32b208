"""Durable storage of validated events: one transaction, deduplicated, then acknowledged.

SQLAlchemy Core, not the ORM unit of work: this is the hottest path of the product.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from .apikeys import AuthenticatedKey
from .database import insert_ignoring_conflicts
from .event_schema import Event
from .models import Event as EventRow
from .models import SuccessRule
from .usage import counter

_events = EventRow.__table__
_rules = SuccessRule.__table__

# Success rule names already registered, per process: only a new name costs a write.
_known_rules: set[tuple[int, str]] = set()
_known_lock = threading.Lock()


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
        "properties": json.dumps(event.properties, separators=(",", ":"))
        if event.properties
        else None,
        "stripped_keys": json.dumps(event.stripped_keys) if event.stripped_keys else None,
        "event_id": event.event_id,
        "occurred_at": event.occurred_at,
        "received_at": received_at,
    }


def store(
    engine: Engine, key: AuthenticatedKey, events: list[Event], received_at: datetime
) -> list[bool]:
    """Store events in one transaction; return, per event, whether it was a duplicate.

    Returns only after the commit: an event reported as stored is on disk.
    """
    duplicate = [False] * len(events)
    seen_ids: dict[str, int] = {}
    plain_rows, idempotent_rows = [], []
    for index, event in enumerate(events):
        if event.event_id is None:
            plain_rows.append(_row(key, event, received_at))
        elif event.event_id in seen_ids:  # repeated inside one batch
            duplicate[index] = True
        else:
            seen_ids[event.event_id] = index
            idempotent_rows.append(_row(key, event, received_at))
    new_rules = _new_rules(key, events, duplicate, received_at)

    pending = ({}, {})
    try:
        with engine.begin() as connection:
            if plain_rows:
                connection.execute(insert(_events), plain_rows)
            if idempotent_rows:
                stored = _insert_idempotent(connection, idempotent_rows)
                for event_id, index in seen_ids.items():
                    duplicate[index] = event_id not in stored
            if new_rules:
                connection.execute(
                    insert_ignoring_conflicts(_rules, ["site_id", "name"]), new_rules
                )
            if counter.due():
                pending = counter.write(connection)
    except Exception:
        counter.restore(*pending)
        raise
    with _known_lock:
        _known_rules.update((rule["site_id"], rule["name"]) for rule in new_rules)
    return duplicate


def _insert_idempotent(connection, rows: list[dict]) -> set[str]:
    """Insert rows that carry an event_id, skipping ids already stored; return those stored."""
    stmt = insert_ignoring_conflicts(_events, ["site_id", "event_id"]).returning(_events.c.event_id)
    if len(rows) == 1:
        return set(connection.execute(stmt, rows[0]).scalars())
    return set(connection.execute(stmt, rows).scalars())


def _new_rules(
    key: AuthenticatedKey, events: list[Event], duplicate: list[bool], now: datetime
) -> list[dict]:
    """Success rule names this process has not registered yet."""
    names = {
        event.name
        for event, dup in zip(events, duplicate, strict=True)
        if event.event_name == "success"
        and not dup
        and (key.site_id, event.name) not in _known_rules
    }
    return [{"site_id": key.site_id, "name": name, "first_seen_at": now} for name in sorted(names)]
