"""Site memberships: add a site with its first owner, add, change and remove members.

Every site keeps at least one owner: demoting or removing the last one is refused with a
message that says what to do instead. Changes take a lock on the site's row first, so two
owners demoting each other at once cannot both succeed and leave the site without one.
Each change is audit-logged in its own transaction.
"""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import ROLE_OWNER, ROLES, Site, SiteMember, User
from . import audit


class MemberRefused(ValueError):
    """A membership change was refused; the message is for the person (page or CLI)."""


def new_site(user: User, domain: str, actor: audit.Actor = None) -> Site | None:
    """Add a site with `user` as its owner and the audit entry (one transaction); None
    when they already added that domain."""
    site = Site(owner_id=user.id, domain=domain)
    db.session.add(site)
    db.session.add(SiteMember(site=site, user_id=user.id, role=ROLE_OWNER))
    try:
        db.session.flush()  # the unique (owner, domain) constraint answers here
    except IntegrityError:
        db.session.rollback()
        return None
    audit.record(site, actor or user, "site_created", domain, owner=user.email)
    db.session.commit()
    return site


def memberships(user_id: int) -> list[tuple[Site, str]]:
    """The sites a user is a member of, with the role, by domain."""
    rows = db.session.execute(
        select(Site, SiteMember.role)
        .join(SiteMember, SiteMember.site_id == Site.id)
        .where(SiteMember.user_id == user_id)
        .order_by(Site.domain, Site.id)
    ).all()
    return [(site, role) for site, role in rows]


def members_of(site: Site) -> list[SiteMember]:
    """The site's members, owners first, then by email."""
    return list(
        db.session.scalars(
            select(SiteMember)
            .join(User, User.id == SiteMember.user_id)
            .where(SiteMember.site_id == site.id)
            .order_by(SiteMember.role != ROLE_OWNER, User.email)
        )
    )


def membership(site: Site, user_id: int) -> SiteMember | None:
    """A user's membership of a site, or None."""
    return db.session.scalar(
        select(SiteMember).where(SiteMember.site_id == site.id, SiteMember.user_id == user_id)
    )


def _lock(site: Site) -> None:
    """Serialise membership changes per site (a row lock on PostgreSQL, the write lock on
    SQLite): a no-op UPDATE of the site's row, held until the commit."""
    db.session.execute(update(Site).where(Site.id == site.id).values(key_serial=Site.key_serial))


def _owner_count(site: Site) -> int:
    """How many owners the site has now."""
    return db.session.execute(
        select(func.count())
        .select_from(SiteMember)
        .where(SiteMember.site_id == site.id, SiteMember.role == ROLE_OWNER)
    ).scalar_one()


def _check_role(role: str) -> None:
    """Refuse a role that does not exist."""
    if role not in ROLES:
        raise MemberRefused(f"The role must be one of {', '.join(ROLES)}; got {role[:20]!r}.")


def add_member(site: Site, user: User, role: str, actor: audit.Actor) -> SiteMember:
    """Make `user` a member of the site with `role`; refused if they already are one."""
    _check_role(role)
    try:
        _lock(site)
        if membership(site, user.id) is not None:
            raise MemberRefused(f"{user.email} is already a member of {site.domain}.")
        member = SiteMember(site_id=site.id, user_id=user.id, role=role)
        db.session.add(member)
        audit.record(site, actor, "member_added", user.email, role=role)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return member


def _last_owner_message(site: Site, member: SiteMember, leaving: bool) -> str:
    """Why the last owner cannot go, and what to do instead."""
    who = "You are" if leaving else f"{member.user.email} is"
    return (
        f"{who} the last owner of {site.domain}: make another member an owner first "
        "(or delete the site)."
    )


def change_role(site: Site, user_id: int, role: str, actor: audit.Actor) -> SiteMember:
    """Give a member another role; the last owner cannot be demoted."""
    _check_role(role)
    try:
        _lock(site)
        member = membership(site, user_id)
        if member is None:
            raise MemberRefused("That person is not a member of this site.")
        if member.role == ROLE_OWNER and role != ROLE_OWNER and _owner_count(site) <= 1:
            raise MemberRefused(_last_owner_message(site, member, False))
        before = member.role
        member.role = role
        if before != role:
            audit.record(
                site, actor, "member_role_changed", member.user.email, before=before, role=role
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return member


def remove_member(site: Site, user_id: int, actor: audit.Actor, leaving: bool = False) -> str:
    """Remove a member (or, `leaving`, let one leave); the last owner cannot go. Their very
    next request is refused: roles are read on every request. Return their email."""
    try:
        _lock(site)
        member = membership(site, user_id)
        if member is None:
            raise MemberRefused("That person is not a member of this site.")
        if member.role == ROLE_OWNER and _owner_count(site) <= 1:
            raise MemberRefused(_last_owner_message(site, member, leaving))
        email = member.user.email
        db.session.delete(member)
        action = "member_left" if leaving else "member_removed"
        audit.record(site, actor, action, email, role=member.role)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return email
