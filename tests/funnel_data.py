"""Events written straight into the events table for the funnel and journey tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, update

from datalook.extensions import db
from datalook.models import Event, Site


@dataclass(frozen=True)
class E:
    """One event to store: who, when (naive UTC), what."""

    visitor: str
    at: datetime
    event_name: str = "pageview"
    path: str = "/"
    name: str | None = None
    value_micros: int | None = None
    properties: dict | None = None


def store(app, site_id: int, events: list[E], received_at: datetime | None = None) -> None:
    """Insert events as the ingestion would store them (visitor ids as given)."""
    with app.app_context():
        rows = [
            {
                "site_id": site_id,
                "api_key_id": None,
                "event_name": e.event_name,
                "name": e.name,
                "page_path": e.path,
                "visitor_id": e.visitor,
                "success_user_id": e.visitor[2:] if e.visitor.startswith("u:") else None,
                "success_value_micros": e.value_micros,
                "properties": json.dumps(e.properties, separators=(",", ":"))
                if e.properties
                else None,
                "stripped_keys": None,
                "event_id": None,
                "occurred_at": e.at,
                "received_at": received_at or datetime(2000, 1, 1),
            }
            for e in events
        ]
        if rows:
            db.session.execute(insert(Event), rows)
        db.session.commit()


def set_timezone(app, site_id: int, tz: str) -> None:
    """Give a site its report time zone."""
    with app.app_context():
        db.session.execute(update(Site).where(Site.id == site_id).values(timezone=tz))
        db.session.commit()
