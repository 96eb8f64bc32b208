"""The audit log: who did what to which site, and when (sign-ins, keys, members and
invitations, rules, funnels, settings, erasures and retention, shared links, deletions).

`record(...)` adds an entry to the caller's session, so that it commits (or rolls back)
with the action it records: call it before the action's own commit. Never pass a secret:
keys are named by their public key id, visitors only by a digest.

Entries are kept a year; those that prove a deletion of data (erasures, retention
cut-offs, a deleted site) six years. `prune` runs once a day in the fold process
(analytics.worker), with every retention cut-off (erasure.delete_before, `flask events
delete`) and with `flask audit prune`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, or_, select
from sqlalchemy.orm import Session

from ..extensions import db
from ..models import AuditEntry, Site, SiteMember, User, utcnow

#: Who did it: a user, or a string for machines ("cli:<login>"); None: nobody in particular.
Actor = User | str | None

#: Every action with its label on the audit page (a new action gets a label here).
LABELS: dict[str, str] = {
    "sign_in": "Signed in",
    "sign_in_failed": "Failed sign-in (wrong password)",
    "key_created": "Created an API key",
    "key_rotated": "Rotated an API key",
    "key_revoked": "Revoked an API key",
    "member_added": "Added a member",
    "member_role_changed": "Changed a member's role",
    "member_removed": "Removed a member",
    "member_left": "Left the site",
    "invitation_created": "Invited someone",
    "invitation_resent": "Re-sent an invitation",
    "invitation_revoked": "Revoked an invitation",
    "invitation_accepted": "Accepted an invitation",
    "rule_changed": "Changed a success rule",
    "funnel_saved": "Saved a funnel",
    "funnel_deleted": "Deleted a funnel",
    "settings_changed": "Changed settings",
    "erase_visitor": "Erased a visitor",
    "delete_before": "Retention cut-off",
    "clear_test": "Cleared test events",
    "share_created": "Created a shared link",
    "share_revoked": "Revoked a shared link",
    "site_created": "Added the site",
    "site_deleted": "Deleted the site",
}

#: Entries without a site, shown on the audit pages of the sites their account belongs to.
ACCOUNT_ACTIONS = ("sign_in", "sign_in_failed")

#: Entries that prove data was deleted, kept as long as such proof may be asked for.
LONG_KEPT = ("erase_visitor", "delete_before", "clear_test", "site_deleted")
KEEP = timedelta(days=365)
KEEP_LONG = timedelta(days=6 * 365)


def _actor_fields(actor: Actor) -> tuple[str, int | None]:
    """The actor as stored: (text, user id or None)."""
    if actor is None or isinstance(actor, str):
        return (actor or "system")[:300], None
    # A user (also behind Flask-Login's current_user proxy).
    return actor.email[:300], actor.id


def record(
    site: Site | None,
    actor: Actor,
    action: str,
    subject: str = "",
    *,
    events_deleted: int | None = None,
    session: Session | None = None,
    **details: Any,
) -> AuditEntry:
    """Add one entry to the session (committed with the caller's action); return it.

    `details` are further facts (JSON-serialisable, never secrets), shown on the page.
    """
    if action not in LABELS:
        raise ValueError(f"unknown audit action {action!r}: add it to audit.LABELS")
    text, user_id = _actor_fields(actor)
    entry = AuditEntry(
        site_id=site.id if site is not None else None,
        site_domain=site.domain if site is not None else None,
        actor=text,
        actor_user_id=user_id,
        action=action,
        subject=subject[:300],
        events_deleted=events_deleted,
        details=json.dumps(details, sort_keys=True, default=str) if details else None,
        created_at=utcnow(),
    )
    (session or db.session()).add(entry)
    return entry


def site_entries_clause(site_id: int) -> ColumnElement[bool]:
    """SQL: the entries a site's audit page shows: the site's own, and the sign-ins (and
    failed sign-ins) of its present members' accounts."""
    members = select(SiteMember.user_id).where(SiteMember.site_id == site_id)
    return or_(
        AuditEntry.site_id == site_id,
        and_(
            AuditEntry.site_id.is_(None),
            AuditEntry.action.in_(ACCOUNT_ACTIONS),
            AuditEntry.actor_user_id.in_(members),
        ),
    )


def prune(session: Session, now: datetime | None = None) -> int:
    """Delete the entries past their keeping period (in the caller's transaction)."""
    now = now or utcnow()
    result = session.execute(
        delete(AuditEntry).where(
            or_(
                and_(AuditEntry.action.not_in(LONG_KEPT), AuditEntry.created_at < now - KEEP),
                AuditEntry.created_at < now - KEEP_LONG,
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page shows: one action, an actor (part of the email), UTC days."""

    action: str | None = None
    actor: str | None = None
    since: date | None = None
    until: date | None = None


def site_entries(
    site_id: int, chosen: AuditFilter, before_id: int | None = None, limit: int | None = None
) -> list[AuditEntry]:
    """The entries of a site's audit page, newest first (older than `before_id`)."""
    query = select(AuditEntry).where(site_entries_clause(site_id))
    if chosen.action:
        query = query.where(AuditEntry.action == chosen.action)
    if chosen.actor:
        query = query.where(AuditEntry.actor.contains(chosen.actor, autoescape=True))
    if chosen.since:
        query = query.where(AuditEntry.created_at >= datetime.combine(chosen.since, time()))
    if chosen.until:
        end = datetime.combine(chosen.until + timedelta(days=1), time())
        query = query.where(AuditEntry.created_at < end)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    query = query.order_by(AuditEntry.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query))
