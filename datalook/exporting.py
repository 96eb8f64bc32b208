"""Export stored events as JSON Lines."""

from __future__ import annotations

import json
from collections.abc import Iterator

from sqlalchemy import select

from .extensions import db
from .ingest.schema import format_value
from .models import ApiKey, Event


def event_dict(event: Event, key_id: str | None) -> dict:
    """Return the public JSON form of a stored event."""
    return {
        "id": event.id,
        "event_name": event.event_name,
        "name": event.name,
        "page_path": event.page_path,
        "success_user_id": event.success_user_id,
        "success_value": format_value(event.success_value_micros),
        "properties": json.loads(event.properties) if event.properties else {},
        "stripped_keys": json.loads(event.stripped_keys) if event.stripped_keys else [],
        "event_id": event.event_id,
        "visitor_id": event.visitor_id,
        "key_id": key_id,
        "timestamp": event.occurred_at.isoformat() + "Z",
        "received_at": event.received_at.isoformat() + "Z",
        # Sent with a test key: no report counts it (report exports leave it out).
        "test": bool(event.is_test),
    }


def export_lines(site_id: int, batch_size: int = 1000) -> Iterator[str]:
    """Yield one JSON object per stored event of a site, oldest first, in bounded memory."""
    query = (
        select(Event, ApiKey.key_id)
        .outerjoin(ApiKey, ApiKey.id == Event.api_key_id)
        .where(Event.site_id == site_id)
        .order_by(Event.id)
        .execution_options(yield_per=batch_size)
    )
    for event, key_id in db.session.execute(query):
        yield json.dumps(event_dict(event, key_id), ensure_ascii=False)
