"""API keys: create (with the 10-key cap), revoke, rotate, and authenticate a Bearer token.

This is the one home of the key model's behaviour; the dashboard, the CLI and /event use it.
"""

from __future__ import annotations

import functools
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import DateTime, String, bindparam, case, func, select, update
from sqlalchemy.engine import Dialect

from ..extensions import db
from ..models import KEY_KIND_LIVE, KEY_KIND_TEST, ApiKey, Site, User, utcnow
from ..sql.compiled import CompiledStatement, StatementCache
from . import tokens

MAX_ACTIVE_KEYS = 10
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


def _active_count(site: Site, now: datetime) -> int:
    """Count the site's keys that still authenticate."""
    return db.session.execute(
        select(func.count())
        .select_from(ApiKey)
        .where(ApiKey.site_id == site.id, ApiKey.active_at(now))
    ).scalar_one()


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
) -> CreatedKey:
    """Create a live or test key named `name`; refuse a duplicate active name or an 11th
    active key (live and test keys count alike toward the cap)."""
    now = now or utcnow()
    name = name.strip()
    if kind not in tokens.PREFIXES:
        raise KeyRefused("A key is either live or test.")
    if not 1 <= len(name) <= 64:
        raise KeyRefused("The key name must be 1 to 64 characters long.")
    try:
        _lock_site(site)
        if _active_count(site, now) >= MAX_ACTIVE_KEYS:
            raise KeyRefused(
                f"This site already has {MAX_ACTIVE_KEYS} active keys, the maximum. "
                "Revoke one first."
            )
        duplicate = db.session.scalar(
            select(ApiKey.id).where(
                ApiKey.site_id == site.id, ApiKey.name == name, ApiKey.active_at(now)
            )
        )
        if duplicate is not None:
            raise KeyRefused(f"An active key named “{name}” already exists; choose another name.")
        created = _insert_key(site, name, user, None, kind)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return created


def revoke_key(key: ApiKey, now: datetime | None = None) -> None:
    """Revoke a key; the very next request with it is refused."""
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        db.session.commit()


def rotate_key(
    key: ApiKey, expire_old_in: str, user: User | None, now: datetime | None = None
) -> CreatedKey:
    """Replace a key by a new one with the same name and limit; the old one expires later."""
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
        if _active_count(site, now) >= MAX_ACTIVE_KEYS:
            raise KeyRefused(
                f"Rotating with a grace period needs a free slot ({MAX_ACTIVE_KEYS} keys are "
                "active). Revoke another key first, or rotate with “now”."
            )
        created = _insert_key(site, key.name, user, key.rate_limit, key.kind)
        key.replaced_by = created.key
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return created


def set_limit(key: ApiKey, limit: str | None) -> None:
    """Set a key's own rate limit (already validated), or None for the default."""
    key.rate_limit = limit
    db.session.commit()


# --- authentication of a Bearer token (the /event hot path) --------------------------------


@dataclass(frozen=True, slots=True)
class AuthenticatedKey:
    """The few facts about a key that an authenticated request needs."""

    id: int
    key_id: str
    site_id: int
    rate_limit: str | None
    is_test: bool = False


@dataclass(frozen=True, slots=True)
class KnownKey:
    """A key that a refused request named by a real key id (for the refusal log only)."""

    id: int
    site_id: int
    is_test: bool


class AuthFailure(Exception):
    """Authentication failed; `code` is the machine-readable reason.

    `key` is the key whose id the token named, when that key exists (a wrong secret, a
    revoked key): its owner sees the refusal in the live view.
    """

    def __init__(self, code: str, message: str, key: KnownKey | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.key = key


_keys = ApiKey.__table__
# Compiled once per dialect. Never cached: the row itself, so that a revocation is seen by
# the very next request on every process and every host.
_LOOKUP = select(
    _keys.c.id,
    _keys.c.key_id,
    _keys.c.site_id,
    _keys.c.secret_hash,
    _keys.c.rate_limit,
    _keys.c.kind,
    # The model's rule of being active, evaluated by the database at the request's `now`.
    case(
        # The class-level rule takes SQL values too (the hybrid's expression side).
        (ApiKey.active_at(bindparam("now", type_=DateTime())), 1),  # type: ignore[arg-type]
        else_=0,
    ).label("active"),
).where(_keys.c.key_id == bindparam("key_id", type_=String()))
_STATEMENTS = StatementCache({"lookup": lambda dialect: CompiledStatement(_LOOKUP, dialect)})


class _KeyRow(NamedTuple):
    """One row of _LOOKUP, by name (the raw DB-API cursor gives plain tuples)."""

    id: int
    key_id: str
    site_id: int
    secret_hash: str
    rate_limit: str | None
    kind: str
    active: int


def bearer_token(header: str | None) -> str:
    """Extract the token from an Authorization header value, or raise AuthFailure."""
    if header is None or not header.strip():
        raise AuthFailure("missing_token", "Send the API key as 'Authorization: Bearer dl_live_…'.")
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise AuthFailure("malformed_token", "The Authorization header must be 'Bearer <token>'.")
    return credentials


@functools.lru_cache(maxsize=1024)
def _presented(credentials: str) -> tuple[str, str, str]:
    """The key id, the secret's stored digest and the kind of a well-formed token
    (MalformedToken if it is not). A pure function of the token, so its answers are kept
    for the next request of the same backend: nothing in them can go stale. Whether the
    key is still valid is read from its row every time."""
    parsed = tokens.parse(credentials)
    return parsed.key_id, tokens.hash_secret(parsed.secret), parsed.kind


def authenticate(
    connection, dialect: Dialect, header: str | None, now: datetime
) -> AuthenticatedKey:
    """Check a Bearer header on a DB-API connection; raise AuthFailure with the reason."""
    try:
        key_id, secret_hash, kind = _presented(bearer_token(header))
    except tokens.MalformedToken as exc:
        raise AuthFailure("malformed_token", f"The token is malformed: {exc}.") from None
    cursor = connection.cursor()
    try:
        lookup = _STATEMENTS.get("lookup", dialect)
        found = lookup.execute(cursor, {"key_id": key_id, "now": now}).fetchone()
    finally:
        cursor.close()
    if found is None:
        raise AuthFailure("invalid_token", "The token is not valid.")
    row = _KeyRow(*found)
    is_test = row.kind == KEY_KIND_TEST
    # An unknown key and a wrong secret look the same from outside. (A token of the other
    # kind cannot match: its checksum covers the prefix, so its secret differs.)
    if not hmac.compare_digest(secret_hash, row.secret_hash) or kind != row.kind:
        raise AuthFailure(
            "invalid_token", "The token is not valid.", KnownKey(row.id, row.site_id, is_test)
        )
    if not row.active:
        raise AuthFailure(
            "revoked_token",
            "The token was revoked or has expired.",
            KnownKey(row.id, row.site_id, is_test),
        )
    return AuthenticatedKey(
        id=row.id,
        key_id=row.key_id,
        site_id=row.site_id,
        rate_limit=row.rate_limit,
        is_test=is_test,
    )
