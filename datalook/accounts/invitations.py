"""Invitations: an owner invites an email address to a site with a role.

The link carries a random token (`dli_…`) shown once and emailed; only its SHA-256 is
stored, and a link is found by that digest (a lookup by a keyed digest of 256 random bits
gives no timing hint worth having). An invitation is for one address (accepting needs an
account with it), valid 7 days, used once: accepting marks it with one conditional UPDATE,
so that two accepts racing cannot both succeed. Re-sending makes a new token (the old link
stops working, the 7 days start again). Every change is audit-logged in its transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from ..extensions import db
from ..models import ROLES, Invitation, Site, SiteMember, User, utcnow
from . import audit
from .emails import InvalidEmail, normalise_email

VALID_FOR = timedelta(days=7)
PREFIX = "dli_"


class InvitationRefused(ValueError):
    """An invitation was refused; the message is for the person (page or CLI)."""


@dataclass(frozen=True)
class Issued:
    """An invitation just created or re-sent, with its token to show once."""

    invitation: Invitation
    token: str


def digest(token: str) -> str:
    """The stored form of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _new_token() -> tuple[str, str]:
    """A fresh token and its digest."""
    token = PREFIX + secrets.token_urlsafe(32)
    return token, digest(token)


def create(site: Site, email: str, role: str, actor: User, now: datetime | None = None) -> Issued:
    """Invite `email` to the site with `role`; refused for a member or a pending invitation."""
    now = now or utcnow()
    try:
        address = normalise_email(email)
    except InvalidEmail as exc:
        raise InvitationRefused(str(exc)) from None
    if role not in ROLES:
        raise InvitationRefused(f"The role must be one of {', '.join(ROLES)}.")
    member = db.session.scalar(
        select(User.id)
        .join(SiteMember, SiteMember.user_id == User.id)
        .where(SiteMember.site_id == site.id, User.email == address)
    )
    if member is not None:
        raise InvitationRefused(f"{address} is already a member of {site.domain}.")
    pending = db.session.scalar(
        select(Invitation.id).where(
            Invitation.site_id == site.id,
            Invitation.email == address,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
    )
    if pending is not None:
        raise InvitationRefused(
            f"{address} already has a pending invitation: re-send or revoke it below."
        )
    token, hashed = _new_token()
    invitation = Invitation(
        site_id=site.id,
        email=address,
        role=role,
        token_hash=hashed,
        created_at=now,
        created_by_id=actor.id,
        expires_at=now + VALID_FOR,
    )
    db.session.add(invitation)
    audit.record(site, actor, "invitation_created", address, role=role)
    db.session.commit()
    return Issued(invitation, token)


def site_invitation(site: Site, invitation_id: int) -> Invitation | None:
    """One of the site's invitations by id, or None."""
    return db.session.scalar(
        select(Invitation).where(Invitation.site_id == site.id, Invitation.id == invitation_id)
    )


def listed(site: Site) -> list[Invitation]:
    """The site's invitations, newest first."""
    return list(
        db.session.scalars(
            select(Invitation).where(Invitation.site_id == site.id).order_by(Invitation.id.desc())
        )
    )


def resend(invitation: Invitation, actor: User, now: datetime | None = None) -> Issued:
    """Give a pending or expired invitation a new token and 7 more days."""
    now = now or utcnow()
    if invitation.status(now) not in ("pending", "expired"):
        raise InvitationRefused(
            f"This invitation was {invitation.status(now)}; invite {invitation.email} again."
        )
    token, hashed = _new_token()
    invitation.token_hash = hashed
    invitation.expires_at = now + VALID_FOR
    audit.record(invitation.site, actor, "invitation_resent", invitation.email)
    db.session.commit()
    return Issued(invitation, token)


def revoke(invitation: Invitation, actor: User, now: datetime | None = None) -> None:
    """Revoke an invitation that was not accepted; its link stops working at once."""
    now = now or utcnow()
    if invitation.accepted_at is not None:
        raise InvitationRefused("This invitation was accepted: remove the member instead.")
    if invitation.revoked_at is None:
        invitation.revoked_at = now
        audit.record(invitation.site, actor, "invitation_revoked", invitation.email)
        db.session.commit()


def find(token: str) -> Invitation | None:
    """The invitation a link's token names (whatever its state), or None."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    hashed = digest(token)
    found = db.session.scalar(select(Invitation).where(Invitation.token_hash == hashed))
    # The lookup matched the digest; compare again in constant time all the same.
    if found is None or not hmac.compare_digest(found.token_hash, hashed):
        return None
    return found


def refusal(invitation: Invitation, user: User | None, now: datetime | None = None) -> str | None:
    """Why `user` cannot accept this invitation now (None: they can)."""
    state = invitation.status(now)
    if state == "expired":
        return "This invitation has expired. Ask the site's owner to send it again."
    if state == "accepted":
        return "This invitation was already used."
    if state == "revoked":
        return "This invitation was revoked."
    if user is not None and user.email != invitation.email:
        return (
            f"This invitation is for {invitation.email}, and you are logged in as "
            f"{user.email}. Log out, then log in or sign up as {invitation.email}."
        )
    return None


def accept(invitation: Invitation, user: User, now: datetime | None = None) -> SiteMember:
    """Accept the invitation as `user`: they become a member with its role (an existing
    member keeps their role). Single use: one conditional UPDATE claims it."""
    now = now or utcnow()
    problem = refusal(invitation, user, now)
    if problem:
        raise InvitationRefused(problem)
    try:
        claimed = db.session.execute(
            update(Invitation)
            .where(
                Invitation.id == invitation.id,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
                Invitation.expires_at > now,
            )
            .values(accepted_at=now, accepted_by_id=user.id)
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise InvitationRefused("This invitation was already used.")
        member = db.session.scalar(
            select(SiteMember).where(
                SiteMember.site_id == invitation.site_id, SiteMember.user_id == user.id
            )
        )
        if member is None:
            member = SiteMember(site_id=invitation.site_id, user_id=user.id, role=invitation.role)
            db.session.add(member)
        audit.record(invitation.site, user, "invitation_accepted", user.email, role=member.role)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    db.session.refresh(invitation)
    return member


def mark_sent(invitation: Invitation, now: datetime | None = None) -> None:
    """Remember that the link was emailed."""
    invitation.sent_at = now or utcnow()
    db.session.commit()
