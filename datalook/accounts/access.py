"""Who may see what: the one place where every route's access is decided.

A principal (a logged-in user; or a read key or a shared link, bound to its one site with a
viewer's rights) wants to do an action with a site. Its role on the site comes
from its membership (read on every request, never kept in the session: a removed member
loses access on the very next request). ACTIONS says the weakest role each action needs:

- no role at all (not a member, not logged in, another site's key): 404, so that nobody
  learns that a site exists;
- a role too weak: 403, with a message (and for JSON, `required_role`) naming the role.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, g, request
from flask_login import current_user
from sqlalchemy import select
from werkzeug.exceptions import Forbidden

from ..envelope import ApiError, wants_json
from ..extensions import db
from ..models import ROLE_ADMIN, ROLE_OWNER, ROLE_VIEWER, ROLES, ApiKey, Site, SiteMember

#: What a principal may want of a site, and the weakest role that may do it.
ACTIONS: dict[str, str] = {
    # Every report and export, funnels and journeys, the live view, the members list.
    "read": ROLE_VIEWER,
    # The bodies of refused requests in the live view (they may quote what a backend sent).
    "live_bodies": ROLE_ADMIN,
    # API keys, success rules, funnels' definitions, report and browser settings, test events.
    "admin": ROLE_ADMIN,
    # Members and invitations, erasure and retention, the audit log, deleting the site.
    "owner": ROLE_OWNER,
}

#: What each role may do, said for people (the members page and the docs show it).
ROLE_SUMMARIES = {
    ROLE_OWNER: "everything: members, erasure, retention, the audit log, deleting the site",
    ROLE_ADMIN: "API keys, success rules, funnels, settings, the live view",
    ROLE_VIEWER: "every report and export, the live view without refused-request bodies",
}


#: Kinds of principal: a logged-in user, a read key (the Stats API), a shared link.
USER, READ_KEY, SHARE = "user", "read_key", "share"


@dataclass(frozen=True)
class Principal:
    """Who makes a request.

    A user (`user_id`; None for nobody) has the roles of their memberships. A read key or a
    shared link (`kind`) names the one site it was made for (`site_id`): a viewer there,
    nobody anywhere else.
    """

    user_id: int | None
    kind: str = USER
    site_id: int | None = None


def current_principal() -> Principal:
    """The principal of the current request: the read key or shared link that authenticated
    it (web/read_auth.py, web/shares.py set `g.principal`), else the logged-in user."""
    principal = g.get("principal")
    if principal is not None:
        return principal
    return Principal(current_user.id if current_user.is_authenticated else None)


def rank(role: str | None) -> int:
    """A role's strength: 0 for none, then viewer < admin < owner."""
    return ROLES.index(role) + 1 if role in ROLES else 0


def allows(role: str | None, action: str) -> bool:
    """Whether `role` may do `action` (an unknown action is a programming error)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    return rank(role) >= rank(ACTIONS[action])


def role_of(principal: Principal, site_id: int) -> str | None:
    """The principal's role on a site (from the database, on every call), or None."""
    if principal.kind in (READ_KEY, SHARE):
        return ROLE_VIEWER if principal.site_id == site_id else None
    if principal.user_id is None:
        return None
    return db.session.scalar(
        select(SiteMember.role).where(
            SiteMember.site_id == site_id, SiteMember.user_id == principal.user_id
        )
    )


def _refused(role: str, action: str) -> Exception:
    """The 403 of a member whose role is too weak: it says which role is needed."""
    needed = ACTIONS[action]
    message = f"This needs the {needed} role on this site; you are a {role}."
    if wants_json(request.path):
        return ApiError(
            403, "role_required", message, extra={"required_role": needed, "role": role}
        )
    return Forbidden(message)


def site_or_404(principal: Principal, site_id: int, action: str = "read") -> Site:
    """Return the site if `principal` may do `action` with it; 404 when it has no role on
    the site (others must not learn that it exists), 403 when its role is too weak."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    role = role_of(principal, site_id)
    site = db.session.get(Site, site_id) if role is not None else None
    if site is None or role is None:
        abort(404)
    if not allows(role, action):
        raise _refused(role, action)
    g.site_role = role  # for the templates (which tabs and buttons to show)
    return site


def granted(action: str) -> bool:
    """Whether the role found by this request's site_or_404 allows `action` too (for parts
    of a page or an answer that a weaker role does not get)."""
    return allows(g.get("site_role"), action)


def site_for(site_id: int, action: str) -> Site:
    """The site for the logged-in user's `action`, or 404/403 (site_or_404)."""
    return site_or_404(current_principal(), site_id, action)


def site_key_or_404(site: Site, key_id: str) -> ApiKey:
    """Return a key of the given (already authorised) site, or 404."""
    key = db.session.scalar(
        select(ApiKey).where(ApiKey.site_id == site.id, ApiKey.key_id == key_id)
    )
    if key is None:
        abort(404)
    return key
