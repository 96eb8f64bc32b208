"""Shared links: create, revoke and find them; their password, its guess limits, and the
signed cookie that remembers a browser that typed it.

A link's token (`secrets.token_urlsafe(32)`, about 256 bits) is shown once to its creator;
the database keeps its SHA-256 only and finds the link by that digest, so a copy of the
database opens no dashboard. Password guesses are limited like log-ins: per client address
(share_password_limit, on the form's POST) and per link across addresses (LINK_FAILURE_LIMIT),
both on the rate-limit storage.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import cast

from flask import current_app, request
from flask_limiter.util import get_remote_address
from flask_login import current_user
from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import parse
from limits.storage import MovingWindowSupport
from sqlalchemy import select
from werkzeug.wrappers import Response

from ..accounts import audit
from ..accounts.passwords import check_password, hash_password
from ..extensions import db, limiter
from ..models import SharedLink, Site, utcnow
from ..ratelimit import failures

#: Wrong passwords per link, from any address, before it waits.
LINK_FAILURE_LIMIT = parse("10 per 5 minutes")
#: Password attempts per client address (all links together).
ADDRESS_LIMIT = "10 per minute"
COOKIE = "datalook_share"
COOKIE_DAYS = 7
_SCOPE = "share-password"

share_password_limit = limiter.limit(
    ADDRESS_LIMIT,
    methods=["POST"],
    key_func=get_remote_address,
    scope="share-password-address",
    error_message="Too many password attempts from your address. Please wait a minute.",
)


@dataclass(frozen=True, slots=True)
class CreatedLink:
    """A link just created, with its token to show once."""

    link: SharedLink
    token: str


def token_digest(token: str) -> str:
    """The stored form of a link token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _audit(site: Site, action: str, subject: str) -> None:
    """Record an owner's change of the site's shared links in the audit log, inside the
    caller's transaction. Never a token or a password: the link's id and name only."""
    actor = current_user if current_user.is_authenticated else "cli"
    audit.record(site, actor, action, subject)


def create(site: Site, name: str, password: str | None, origins: list[str]) -> CreatedLink:
    """Create a link for the site (password hashed with bcrypt, if any)."""
    token = secrets.token_urlsafe(32)
    link = SharedLink(
        site_id=site.id,
        token_hash=token_digest(token),
        name=name,
        password_hash=hash_password(password) if password else None,
        frame_ancestors=" ".join(origins) or None,
        created_by_id=current_user.id if current_user.is_authenticated else None,
    )
    db.session.add(link)
    db.session.flush()
    _audit(site, "share_created", f"shared link {link.id} “{name}”")
    db.session.commit()
    return CreatedLink(link, token)


def revoke(link: SharedLink) -> None:
    """Revoke a link: from the next request on, its URL is 404."""
    if link.revoked_at is None:
        link.revoked_at = utcnow()
        _audit(link.site, "share_revoked", f"shared link {link.id} “{link.name}”")
        db.session.commit()


def site_links(site: Site) -> list[SharedLink]:
    """The site's links, active ones first, newest first."""
    return list(
        db.session.scalars(
            select(SharedLink)
            .where(SharedLink.site_id == site.id)
            .order_by(SharedLink.revoked_at.is_not(None), SharedLink.id.desc())
        )
    )


def active_link(token: str) -> SharedLink | None:
    """The active link of a token, or None (unknown, malformed or revoked alike)."""
    if not 20 <= len(token) <= 100:
        return None
    return db.session.scalar(
        select(SharedLink).where(
            SharedLink.token_hash == token_digest(token), SharedLink.revoked_at.is_(None)
        )
    )


# --- the password and its limits --------------------------------------------------------------


def _storage() -> MovingWindowSupport:
    """The configured rate-limit storage (moving windows)."""
    return cast(MovingWindowSupport, limiter.storage)


def _link_key(link: SharedLink) -> str:
    """The link's key in the limit storage."""
    return LINK_FAILURE_LIMIT.key_for(_SCOPE, str(link.id))


def link_wait(link: SharedLink) -> int:
    """Seconds until the link accepts another password attempt (0: now)."""
    return failures.wait_seconds(
        _storage(), LINK_FAILURE_LIMIT, _link_key(link), "the shared link's password limit"
    )


def check(link: SharedLink, password: str) -> bool:
    """Check a password (bcrypt); a wrong one counts against the link."""
    if link.password_hash and check_password(password, link.password_hash):
        return True
    failures.count_failure(
        _storage(), LINK_FAILURE_LIMIT, _link_key(link), "a wrong shared-link password"
    )
    return False


# --- the cookie of a browser that typed the password -----------------------------------------


def _serializer() -> URLSafeTimedSerializer:
    """Signs the unlock cookie with the app's secret key."""
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="datalook shared link")


def _stamp(link: SharedLink) -> str:
    """What the cookie holds for a link: its id and a digest of its password hash, so that
    changing the password locks out every browser."""
    return f"{link.id}:{hashlib.sha256((link.password_hash or '').encode()).hexdigest()[:16]}"


def unlocked(link: SharedLink) -> bool:
    """Whether this browser may see the link: no password, or a valid unlock cookie."""
    if not link.password_hash:
        return True
    value = request.cookies.get(COOKIE)
    if not value:
        return False
    try:
        stamps = _serializer().loads(value, max_age=COOKIE_DAYS * 86400)
    except BadSignature:
        return False
    return isinstance(stamps, list) and _stamp(link) in stamps


def remember(response: Response, link: SharedLink) -> Response:
    """Set the unlock cookie for the link (kept with up to 4 others). SameSite=None over
    HTTPS, so that an embedded link stays open in its iframe; Lax otherwise."""
    stamps: list = []
    if value := request.cookies.get(COOKIE):
        try:
            stamps = [s for s in _serializer().loads(value) if isinstance(s, str)][-4:]
        except (BadSignature, TypeError):
            stamps = []
    stamps.append(_stamp(link))
    secure = bool(current_app.config.get("SESSION_COOKIE_SECURE") or request.is_secure)
    response.set_cookie(
        COOKIE,
        _serializer().dumps(stamps),
        max_age=COOKIE_DAYS * 86400,
        path="/share/",
        secure=secure,
        httponly=True,
        samesite="None" if secure else "Lax",
    )
    return response
