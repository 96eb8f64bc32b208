"""The cookieless visitor id of browser events: `c:<hash>`, the same for one visitor all day.

The hash covers a secret salt that rotates every UTC day, the site, the client address and
the user agent. The salt lives in the database so that every process and host agrees; the
salts of earlier days are deleted, so yesterday's ids cannot be recomputed and a visitor
cannot be followed across days or sites. The address itself is never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from datetime import date, timedelta
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.engine import Connection

from ..models import VisitorSalt
from ..sql.connections import insert_ignoring_conflicts

_salts = cast(Table, VisitorSalt.__table__)
# Salts already read, per database and day: the table is read once a day per process.
_known: dict[tuple[str | None, date], bytes] = {}
_known_lock = threading.Lock()


def daily_salt(connection: Connection, day: date) -> bytes:
    """Return the salt of a UTC day, creating it (once, for every process) when missing."""
    cache_key = (connection.engine.url.database, day)
    found = _known.get(cache_key)
    if found is not None:
        return found
    salt = connection.scalar(select(_salts.c.salt).where(_salts.c.day == day))
    if salt is None:
        # Several processes may race here: the first insert wins, everyone reads it back.
        connection.execute(
            insert_ignoring_conflicts(_salts, ["day"], connection.dialect.name).values(
                day=day, salt=secrets.token_hex(32)
            )
        )
        # Older salts go: ids of past days can then never be recomputed.
        connection.execute(delete(_salts).where(_salts.c.day < day - timedelta(days=1)))
        connection.commit()
        salt = connection.execute(select(_salts.c.salt).where(_salts.c.day == day)).scalar_one()
    value = bytes.fromhex(salt)
    with _known_lock:
        if len(_known) > 64:  # old days: the cache never grows
            _known.clear()
        _known[cache_key] = value
    return value


def existing_salt(connection: Connection, day: date) -> bytes | None:
    """The salt of a UTC day if it still exists (never made: a past day's is gone for good)."""
    found = _known.get((connection.engine.url.database, day))
    if found is not None:
        return found
    salt = connection.scalar(select(_salts.c.salt).where(_salts.c.day == day))
    return bytes.fromhex(salt) if salt is not None else None


def visitor_id(salt: bytes, site_id: int, address: str, user_agent: str) -> str:
    """The day's id of one browser on one site: `c:` and 32 hex digits of a keyed hash."""
    message = f"{site_id}\n{address}\n{user_agent}".encode()
    return "c:" + hmac.new(salt, message, hashlib.sha256).hexdigest()[:32]
