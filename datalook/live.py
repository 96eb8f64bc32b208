"""The live view of a site: its newest events and refused requests, merged, newest first.

A cursor (`e<event id>.r<refusal id>`) says what the reader has already seen; a poll asks
for what came after it. Each poll costs two index range reads of at most PAGE + 1 rows,
whatever the number of events stored: filtered reads look only at the site's newest
SCAN_WINDOW events, and the refused-request log is bounded per site (ingest/refusals.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import ColumnElement, func, select

from .browser import bot_counts
from .envelope import parameter_error
from .extensions import db
from .ingest.refusals import CONTEXT_TOO_OLD, DUPLICATE, KEEP_FOR
from .ingest.schema import EVENT_NAMES, MAX_NAME, MAX_USER_ID, format_value
from .models import ApiKey, Event, RefusedRequest, Site, utcnow

PAGE = 50
# The live view counts the bot requests dropped over this many days, naming the first few.
BOT_DAYS = 7
MAX_BOTS_NAMED = 5
SCAN_WINDOW = 10_000
_CURSOR = re.compile(r"\Ae(\d{1,19})\.r(\d{1,19})\Z")
_KEY_ID = re.compile(r"\A[A-Za-z0-9]{1,32}\Z")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True, slots=True)
class Cursor:
    """The newest event id and refused-request id that a reader has seen."""

    event_id: int = 0
    refusal_id: int = 0

    def __str__(self) -> str:
        """The cursor as the `after` parameter spells it."""
        return f"e{self.event_id}.r{self.refusal_id}"


@dataclass(frozen=True, slots=True)
class Filters:
    """What the reader asked to see; empty fields do not filter."""

    type: str | None = None
    rule: str | None = None
    key: str | None = None
    visitor: str | None = None
    refused_only: bool = False

    @property
    def events_only(self) -> bool:
        """Whether a filter applies only to events (refusals have no type, rule or visitor)."""
        return bool(self.type or self.rule or self.visitor)


def parse_cursor(text: str | None) -> Cursor | None:
    """Parse `after`, or None when absent; a 400 naming `after` when malformed."""
    if text is None or text == "":
        return None
    match = _CURSOR.match(text)
    if match is None:
        raise parameter_error(
            "after", "invalid_cursor", "after must be a cursor returned by live.json"
        )
    return Cursor(int(match.group(1)), int(match.group(2)))


def parse_filters(args) -> Filters:
    """Read and check the filter parameters (type, rule, key, visitor, refused)."""
    kind = args.get("type") or None
    if kind is not None and kind not in EVENT_NAMES:
        raise parameter_error(
            "type", "invalid_choice", f"type must be one of {', '.join(EVENT_NAMES)}"
        )
    rule = args.get("rule") or None
    if rule is not None and len(rule) > MAX_NAME:
        raise parameter_error("rule", "too_long", f"rule must be at most {MAX_NAME} characters")
    key = args.get("key") or None
    if key is not None and not _KEY_ID.match(key):
        raise parameter_error("key", "invalid_key", "key must be a key id (letters and digits)")
    visitor = args.get("visitor") or None
    if visitor is not None and len(visitor) > MAX_USER_ID:
        raise parameter_error(
            "visitor", "too_long", f"visitor must be at most {MAX_USER_ID} characters"
        )
    refused = (args.get("refused") or "").lower()
    if refused not in ("", "0", "false", "no", "off", *_TRUE):
        raise parameter_error("refused", "invalid_boolean", "refused must be 1 or 0")
    return Filters(kind, rule, key, visitor, refused in _TRUE)


def _iso(moment: datetime) -> str:
    """A stored naive-UTC time as ISO 8601 with Z."""
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _key_dict(key_id: str | None, name: str | None, kind: str | None) -> dict | None:
    """The sending key as the live view shows it (never more than its public id)."""
    if key_id is None:
        return None
    return {"key_id": key_id, "name": name, "kind": kind}


def _event_item(event: Event, key_id: str | None, name: str | None, kind: str | None) -> dict:
    """One stored event with all its fields."""
    return {
        "kind": "event",
        "id": f"e{event.id}",
        "time": _iso(event.received_at),
        "occurred_at": _iso(event.occurred_at),
        "event_name": event.event_name,
        "name": event.name,
        "page_path": event.page_path,
        "visitor_id": event.visitor_id,
        "success_user_id": event.success_user_id,
        "success_value": format_value(event.success_value_micros),
        "properties": json.loads(event.properties) if event.properties else {},
        "stripped_keys": json.loads(event.stripped_keys) if event.stripped_keys else [],
        "event_id": event.event_id,
        "key": _key_dict(key_id, name, kind),
        "test": bool(event.is_test),
        "duplicate": False,
    }


def _refusal_item(
    row: RefusedRequest,
    key_id: str | None,
    name: str | None,
    kind: str | None,
    *,
    bodies: bool = True,
) -> dict:
    """One refused request (or a duplicate, accepted but not stored again; or an accepted
    server event whose context was too old to join its visit: "not_joined")."""
    duplicate = row.code == DUPLICATE
    noted = "not_joined" if row.code == CONTEXT_TOO_OLD else "refused"
    return {
        "kind": "duplicate" if duplicate else noted,
        "id": f"r{row.id}",
        "time": _iso(row.received_at),
        "status": row.status,
        "code": row.code,
        "message": row.message,
        "errors": json.loads(row.errors) if row.errors else [],
        # The body as sent (PII keys and tokens removed), for those whose role shows it.
        "excerpt": row.excerpt if bodies else None,
        "suppressed": row.suppressed,
        "key": _key_dict(key_id, name, kind),
        "test": bool(row.is_test),
        "duplicate": duplicate,
    }


def _key_pk(site: Site, key_id: str) -> int:
    """The row id of one of the site's keys; a 400 naming `key` when it has none such."""
    found = db.session.scalar(
        select(ApiKey.id).where(ApiKey.site_id == site.id, ApiKey.key_id == key_id)
    )
    if found is None:
        raise parameter_error("key", "unknown_key", "this site has no key with that id")
    return found


def _window_start(site_id: int) -> ColumnElement[int]:
    """The id below which filtered reads do not look: the site's SCAN_WINDOW-th newest."""
    boundary = (
        select(Event.id)
        .where(Event.site_id == site_id)
        .order_by(Event.id.desc())
        .offset(SCAN_WINDOW)
        .limit(1)
        .scalar_subquery()
    )
    return func.coalesce(boundary, 0)


def _events(site: Site, after: Cursor | None, filters: Filters, key_pk: int | None) -> list:
    """The newest matching events after the cursor (at most PAGE + 1)."""
    query = (
        select(Event, ApiKey.key_id, ApiKey.name, ApiKey.kind)
        .outerjoin(ApiKey, ApiKey.id == Event.api_key_id)
        .where(Event.site_id == site.id)
    )
    if after is not None:
        query = query.where(Event.id > after.event_id)
    if key_pk is not None:
        query = query.where(Event.api_key_id == key_pk)
    if filters.type:
        query = query.where(Event.event_name == filters.type)
    if filters.rule:
        query = query.where(Event.event_name == "success", Event.name == filters.rule)
    if filters.visitor:
        query = query.where(Event.visitor_id == f"u:{filters.visitor}")
    if key_pk is not None or filters.events_only:
        query = query.where(Event.id > _window_start(site.id))
    return list(db.session.execute(query.order_by(Event.id.desc()).limit(PAGE + 1)))


def _refusals(site: Site, after: Cursor | None, key_pk: int | None, now: datetime) -> list:
    """The newest refused requests after the cursor (at most PAGE + 1, within KEEP_FOR)."""
    query = (
        select(RefusedRequest, ApiKey.key_id, ApiKey.name, ApiKey.kind)
        .outerjoin(ApiKey, ApiKey.id == RefusedRequest.api_key_id)
        .where(RefusedRequest.site_id == site.id, RefusedRequest.received_at >= now - KEEP_FOR)
    )
    if after is not None:
        query = query.where(RefusedRequest.id > after.refusal_id)
    if key_pk is not None:
        query = query.where(RefusedRequest.api_key_id == key_pk)
    return list(db.session.execute(query.order_by(RefusedRequest.id.desc()).limit(PAGE + 1)))


def feed(site: Site, after: Cursor | None, filters: Filters, bodies: bool = True) -> dict:
    """The live view's JSON: items newest first, the next cursor, and whether some were
    skipped; without `bodies`, refused requests come without the excerpt of their body."""
    key_pk = _key_pk(site, filters.key) if filters.key else None
    events = [] if filters.refused_only else _events(site, after, filters, key_pk)
    refusals = [] if filters.events_only else _refusals(site, after, key_pk, utcnow())
    items = [_event_item(*row) for row in events]
    items += [_refusal_item(*row, bodies=bodies) for row in refusals]
    # Newest first; at the same instant, a request's refusal after its events, then by id.
    items.sort(key=lambda item: (item["time"], item["id"][0], int(item["id"][1:])), reverse=True)
    base = after or Cursor()
    cursor = Cursor(
        max(base.event_id, events[0][0].id if events else 0),
        max(base.refusal_id, refusals[0][0].id if refusals else 0),
    )
    body: dict = {
        "items": items[:PAGE],
        "cursor": str(cursor),
        # After a cursor: more arrived than one page holds; the oldest of them are skipped.
        "gap": after is not None and len(items) > PAGE,
    }
    if after is None:
        keys = db.session.execute(
            select(ApiKey.key_id, ApiKey.name, ApiKey.kind)
            .where(ApiKey.site_id == site.id)
            .order_by(ApiKey.id)
        ).all()
        body["keys"] = [_key_dict(*row) for row in keys]
    body["bots"] = bots_filtered(site)
    return body


def bots_filtered(site: Site) -> dict:
    """Browser requests dropped as bots over the last BOT_DAYS days, by bot (most first):
    a developer testing with a headless browser learns why nothing shows."""
    found = bot_counts.recent(db.session.connection(), site.id, utcnow().date(), BOT_DAYS)
    return {
        "days": BOT_DAYS,
        "requests": found.requests,
        "by_bot": [{"bot": bot, "requests": n} for bot, n in found.bots[:MAX_BOTS_NAMED]],
    }


def last_refusal(key: ApiKey) -> dict | None:
    """The newest refused request of a key (not duplicates), for the quest's wait."""
    found = db.session.execute(
        select(RefusedRequest)
        .where(RefusedRequest.api_key_id == key.id, RefusedRequest.code != DUPLICATE)
        .order_by(RefusedRequest.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if found is None:
        return None
    return _refusal_item(found, key.key_id, key.name, key.kind)


#: test_events_only counts at most this many test events (the notice says "10,000+").
MAX_TEST_COUNTED = 10_000


def test_events_only(site_id: int) -> int:
    """How many test events a site has when it has no counted event at all (0 otherwise):
    the dashboard then says why its reports are empty. Two bounded index reads."""
    counted = db.session.scalar(
        select(Event.id).where(Event.site_id == site_id, Event.is_test.is_(False)).limit(1)
    )
    if counted is not None:
        return 0
    tests = (
        select(Event.id)
        .where(Event.site_id == site_id, Event.is_test.is_(True))
        .limit(MAX_TEST_COUNTED + 1)
        .subquery()
    )
    return int(db.session.scalar(select(func.count()).select_from(tests)) or 0)
