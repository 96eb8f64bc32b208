"""Test data made directly through the models and datalook.keys.apikeys (no forms, no CLI)."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import func, select

from datalook import exporting
from datalook.extensions import db
from datalook.keys import apikeys
from datalook.models import ROLE_OWNER, ApiKey, Event, Site, SiteMember, User

_serial = itertools.count(1)


@dataclass(frozen=True)
class Made:
    """What a factory made: ids to look rows up again, and the plaintext token."""

    user_id: int
    site_id: int
    key_pk: int
    key_id: str
    token: str
    domain: str


def make_user(email: str | None = None) -> User:
    """Add a user (inside an app context) and return it."""
    user = User(email=email or f"owner{next(_serial)}@example.com")
    user.set_password("correct horse battery")
    db.session.add(user)
    db.session.commit()
    return user


def make_site(owner: User, domain: str | None = None) -> Site:
    """Add a site with `owner` as its owner member (inside an app context); return it."""
    site = Site(owner_id=owner.id, domain=domain or f"site{next(_serial)}.example.com")
    db.session.add(site)
    db.session.add(SiteMember(site=site, user_id=owner.id, role=ROLE_OWNER))
    db.session.commit()
    return site


def make_key(site: Site, name: str | None = None, rate_limit: str | None = None) -> Made:
    """Create a key through datalook.keys.apikeys.create_key; optionally set its own limit."""
    created = apikeys.create_key(site, name or f"key {next(_serial)}", None)
    if rate_limit is not None:
        apikeys.set_limit(created.key, rate_limit)
    return Made(
        user_id=site.owner_id,
        site_id=site.id,
        key_pk=created.key.id,
        key_id=created.key.key_id,
        token=created.token,
        domain=site.domain,
    )


def create_token(app: Flask, rate_limit: str | None = "100000 per 10 seconds") -> Made:
    """Make a user, a site and a key; return their ids and the token.

    The key's limit is raised by default so tests that send many events are not throttled;
    pass None to keep the configured default.
    """
    with app.app_context():
        user = make_user()
        site = make_site(user)
        return make_key(site, rate_limit=rate_limit)


def second_key(app: Flask, site_id: int, rate_limit: str | None = None) -> Made:
    """Create another key for an existing site."""
    with app.app_context():
        site = db.session.get(Site, site_id)
        return make_key(site, rate_limit=rate_limit)


def get_key(app: Flask, key_pk: int) -> ApiKey:
    """Return a fresh, detached copy of a key row."""
    with app.app_context():
        key = db.session.scalar(select(ApiKey).where(ApiKey.id == key_pk))
        db.session.expunge(key)
        return key


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for a token."""
    return {"Authorization": f"Bearer {token}"}


def stored_events(app: Flask, site_id: int) -> list[dict]:
    """The site's stored events, read back through the export (oldest first)."""
    with app.app_context():
        return [json.loads(line) for line in exporting.export_lines(site_id)]


def event_count(app: Flask) -> int:
    """How many events the database holds, all sites together."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Event))
