"""API keys: create (with the 10-key cap), revoke, rotate, and authenticate a Bearer token.

This is the one home of the key model's behaviour; the dashboard, the CLI and /event use it.
Authenticating a token is authentication.py, which needs no Flask (the ingestion API imports
it from there); `apikeys.authenticate`, `AuthFailure` and `KnownKey` name the same objects.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from ..accounts import audit
from ..extensions import db
from ..models import KEY_KIND_LIVE, KEY_KIND_READ, ApiKey, Site, User, utcnow
from . import tokens
from .authentication import AuthFailure as AuthFailure
from .authentication import KnownKey as KnownKey
from .authentication import authenticate as authenticate

MAX_ACTIVE_KEYS = 10
# Read keys (the Stats API) have a cap of their own, counted apart from live and test keys.
MAX_ACTIVE_READ_KEYS = 10
GRACE_PERIODS = {
    "now": timedelta(0),
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


class KeyRefused(ValueError):
    """A key operation was refused; the message is for the person (page or CLI)."""


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A key that was just created, with the plaintext token to show once."""

    key: ApiKey
    token: str


def _lock_site(site: Site) -> None:
    """Serialise key creation per site (row lock on PostgreSQL, write lock on SQLite)."""
    db.session.execute(
        update(Site).where(Site.id == site.id).values(key_serial=Site.key_serial + 1)
    )


def _same_cap(kind: str):
    """The condition on ApiKey.kind of the keys that share a cap with a key of `kind`:
    read keys with read keys, live and test keys together."""
    return ApiKey.kind == KEY_KIND_READ if kind == KEY_KIND_READ else ApiKey.kind != KEY_KIND_READ


def cap_of(kind: str) -> int:
    """The most active keys of a kind's group (read keys, or live and test keys together)."""
    return MAX_ACTIVE_READ_KEYS if kind == KEY_KIND_READ else MAX_ACTIVE_KEYS


def _active_count(site: Site, now: datetime, kind: str = KEY_KIND_LIVE) -> int:
    """Count the site's keys that still authenticate, of the group that `kind`'s cap counts."""
    return db.session.execute(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.site_id == site.id, ApiKey.active_at(now), _same_cap(kind))
    ).scalar_one()


def active_keys_created_by(site: Site, user_id: int, now: datetime | None = None) -> int:
    """How many of the site's keys that still authenticate `user_id` created. Keys belong to
    the site, so they outlive their creator's membership: this tells an owner who removes
    someone which keys to look at."""
    return db.session.execute(
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.site_id == site.id,
            ApiKey.created_by_id == user_id,
            ApiKey.active_at(now or utcnow()),
        )
    ).scalar_one()


def keys_note(count: int) -> str:
    """What to say about a removed member's keys (empty when they created none)."""
    if not count:
        return ""
    what = "key they created keeps" if count == 1 else "keys they created keep"
    return (
        f" The {count} API {what} working (keys belong to the site): "
        "revoke on the API keys page what should stop."
    )


def _insert_key(
    site: Site, name: str, user: User | None, rate_limit: str | None, kind: str
) -> CreatedKey:
    """Add a new key row (inside the caller's transaction) and return its token."""
    new = tokens.generate(kind=kind)
    key = ApiKey(
        kind=kind,
        site_id=site.id,
        key_id=new.key_id,
        name=name,
        secret_hash=new.secret_hash,
        created_by_id=user.id if user else None,
        rate_limit=rate_limit,
    )
    db.session.add(key)
    db.session.flush()
    return CreatedKey(key=key, token=new.token)


def create_key(
    site: Site,
    name: str,
    user: User | None,
    now: datetime | None = None,
    kind: str = KEY_KIND_LIVE,
    actor: audit.Actor = None,
    with_key: Callable[[CreatedKey], None] | None = None,
) -> CreatedKey:
    """Create a live, test or read key named `name`; refuse a duplicate active name or an 11th
    active key (live and test keys count alike toward their cap; read keys have their own).

    `with_key` is called with the new key before the commit, so what it adds to the session
    (the show-once page's reveal) is stored with the key or not at all."""
    now = now or utcnow()
    name = name.strip()
    if kind not in tokens.PREFIXES:
        raise KeyRefused("A key is live, test or read.")
    if not 1 <= len(name) <= 64:
        raise KeyRefused("The key name must be 1 to 64 characters long.")
    try:
        _lock_site(site)
        cap = cap_of(kind)
        if _active_count(site, now, kind) >= cap:
            what = "read keys" if kind == KEY_KIND_READ else "keys"
            raise KeyRefused(
                f"This site already has {cap} active {what}, the maximum. Revoke one first."
            )
        duplicate = db.session.scalar(
            select(ApiKey.id).where(
                ApiKey.site_id == site.id, ApiKey.name == name, ApiKey.active_at(now)
            )
        )
        if duplicate is not None:
            raise KeyRefused(f"An active key named “{name}” already exists; choose another name.")
        created = _insert_key(site, name, user, None, kind)
        audit.record(site, actor or user, "key_created", created.key.key_id, name=name, kind=kind)
        if with_key is not None:
            db.session.flush()  # the key's id, for what refers to it
            with_key(created)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return created


def revoke_key(key: ApiKey, now: datetime | None = None, actor: audit.Actor = None) -> None:
    """Revoke a key; the very next request with it is refused."""
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        audit.record(key.site, actor, "key_revoked", key.key_id, name=key.name)
        db.session.commit()


def rotate_key(
    key: ApiKey,
    expire_old_in: str,
    user: User | None,
    now: datetime | None = None,
    actor: audit.Actor = None,
    with_key: Callable[[CreatedKey], None] | None = None,
) -> CreatedKey:
    """Replace a key by a new one with the same name and limit; the old one expires later.

    `with_key`: as create_key's, called with the new key before the commit."""
    now = now or utcnow()
    if expire_old_in not in GRACE_PERIODS:
        raise KeyRefused("Choose when the old key stops working: now, 1h, 24h or 7d.")
    site = key.site
    try:
        _lock_site(site)
        # Decide on the row as it is now that this site's key changes are ours alone: a
        # concurrent rotation of the same key may have committed since the key was loaded.
        db.session.refresh(key)
        if not key.active_at(now):
            raise KeyRefused("This key is no longer active; create a new key instead.")
        if key.expires_at is not None:
            raise KeyRefused("This key was already rotated; rotate its successor instead.")
        grace = GRACE_PERIODS[expire_old_in]
        if grace:
            key.expires_at = now + grace  # the old key counts toward the cap until then
        else:
            key.revoked_at = now
        db.session.flush()
        if _active_count(site, now, key.kind) >= cap_of(key.kind):
            raise KeyRefused(
                f"Rotating with a grace period needs a free slot ({cap_of(key.kind)} keys are "
                "active). Revoke another key first, or rotate with “now”."
            )
        created = _insert_key(site, key.name, user, key.rate_limit, key.kind)
        key.replaced_by = created.key
        audit.record(
            site,
            actor or user,
            "key_rotated",
            key.key_id,
            replaced_by=created.key.key_id,
            old_key_stops=expire_old_in,
        )
        if with_key is not None:
            db.session.flush()
            with_key(created)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return created


def set_limit(key: ApiKey, limit: str | None) -> None:
    """Set a key's own rate limit (already validated), or None for the default."""
    key.rate_limit = limit
    db.session.commit()
