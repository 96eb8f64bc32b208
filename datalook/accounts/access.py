"""Who may see what: a site and everything in it belong to its owner; a read key or a shared
link reads the reports of its one site and nothing else.

Every route asks here, with the principal making the request (today a logged-in user) and
what it wants to do, so that roles and read keys can be added in this one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, g
from flask_login import current_user
from sqlalchemy import select

from ..extensions import db
from ..models import ApiKey, Site

#: What a principal may want of a site: read its reports, or manage it.
ACTIONS = ("read", "manage")


#: Kinds of principal: a logged-in user, a read key (the Stats API), a shared link.
USER, READ_KEY, SHARE = "user", "read_key", "share"


@dataclass(frozen=True)
class Principal:
    """Who makes a request: the id of a logged-in user (None for nobody), or a read key or a
    shared link, which name the one site they were made for (`site_id`)."""

    user_id: int | None
    kind: str = USER
    site_id: int | None = None

    @property
    def sees_request_bodies(self) -> bool:
        """Whether the live view may show refused requests' bodies (people of the site only)."""
        return self.kind == USER


def current_principal() -> Principal:
    """The principal of the current request: the read key or shared link that authenticated
    it (web/read_auth.py, web/shares.py set `g.principal`), else the logged-in user."""
    principal = g.get("principal")
    if principal is not None:
        return principal
    return Principal(current_user.id if current_user.is_authenticated else None)


def site_or_404(principal: Principal, site_id: int, action: str = "read") -> Site:
    """Return the site if `principal` may do `action` with it, or 404 (never 403: others
    must not learn that it exists)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    site = None
    if principal.kind in (READ_KEY, SHARE):
        # A viewer's rights on its one site: reading reports, nothing else.
        if action == "read" and principal.site_id == site_id:
            site = db.session.get(Site, site_id)
    elif principal.user_id is not None:
        site = db.session.scalar(
            select(Site).where(Site.id == site_id, Site.owner_id == principal.user_id)
        )
    if site is None:
        abort(404)
    return site


def owned_site_or_404(site_id: int) -> Site:
    """Return the current user's site to manage, or 404."""
    return site_or_404(current_principal(), site_id, "manage")


def owned_key_or_404(site: Site, key_id: str) -> ApiKey:
    """Return a key of the given (already owned) site, or 404."""
    key = db.session.scalar(
        select(ApiKey).where(ApiKey.site_id == site.id, ApiKey.key_id == key_id)
    )
    if key is None:
        abort(404)
    return key
