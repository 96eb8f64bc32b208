"""Each audited action writes its entry in the action's own transaction: inside the commit
both the change and the entry are visible, and when that commit fails neither is stored.
No entry carries a secret (a key's secret, an invitation's token or its digest)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import event, func, select

from datalook.accounts import invitations, members
from datalook.extensions import db
from datalook.keys import apikeys
from datalook.models import (
    KEY_KIND_READ,
    ApiKey,
    AuditEntry,
    Invitation,
    Site,
    SiteMember,
    User,
    utcnow,
)
from tests.conftest import sign_up


class CommitFailed(Exception):
    """Raised by the test inside the action's commit, after its writes were flushed."""


def _setup(app, client) -> dict:
    """An owner with a site, a second member (viewer), a read key and a pending invitation;
    returns their ids and the secrets that must never reach the log."""
    sign_up(client)
    other = app.test_client()
    sign_up(other, "viewer@example.com")
    sign_up(app.test_client(), "invitee@example.com")
    with app.app_context():
        owner = db.session.scalar(select(User).where(User.email == "owner@example.com"))
        viewer = db.session.scalar(select(User).where(User.email == "viewer@example.com"))
        site = members.new_site(owner, "example.com")
        assert site is not None
        members.add_member(site, viewer, "viewer", owner)
        key = apikeys.create_key(site, "Finance", owner, kind=KEY_KIND_READ, actor=owner)
        issued = invitations.create(site, "invitee@example.com", "viewer", owner)
        return {
            "site": site.id,
            "owner": owner.id,
            "viewer": viewer.id,
            "key": key.key.id,
            "invitation": issued.invitation.id,
            "secrets": [
                key.token,
                key.token.split("_", 3)[3],
                issued.token,
                invitations.digest(issued.token),
            ],
        }


def _objects(ids: dict) -> tuple[Site, User, ApiKey, Invitation]:
    """The site, its owner, its read key and its invitation, in this app context."""
    return (
        db.session.get(Site, ids["site"]),
        db.session.get(User, ids["owner"]),
        db.session.get(ApiKey, ids["key"]),
        db.session.get(Invitation, ids["invitation"]),
    )


def _role(ids: dict) -> str | None:
    """The viewer's role now."""
    return db.session.scalar(
        select(SiteMember.role).where(
            SiteMember.site_id == ids["site"], SiteMember.user_id == ids["viewer"]
        )
    )


def _invitee() -> User:
    return db.session.scalar(select(User).where(User.email == "invitee@example.com"))


def _count_keys(ids: dict) -> int:
    return db.session.scalar(
        select(func.count()).select_from(ApiKey).where(ApiKey.site_id == ids["site"])
    )


# action, what it does, the state it changes (read before and after)
ACTIONS: list[tuple[str, Callable, Callable]] = [
    (
        "key_created",
        lambda ids: apikeys.create_key(
            _objects(ids)[0], "Status screen", _objects(ids)[1], kind=KEY_KIND_READ
        ),
        _count_keys,
    ),
    (
        "key_revoked",
        lambda ids: apikeys.revoke_key(_objects(ids)[2], actor=_objects(ids)[1]),
        lambda ids: db.session.get(ApiKey, ids["key"]).revoked_at,
    ),
    (
        "key_rotated",
        lambda ids: apikeys.rotate_key(_objects(ids)[2], "1h", _objects(ids)[1]),
        _count_keys,
    ),
    (
        "member_role_changed",
        lambda ids: members.change_role(_objects(ids)[0], ids["viewer"], "admin", _objects(ids)[1]),
        _role,
    ),
    (
        "member_removed",
        lambda ids: members.remove_member(_objects(ids)[0], ids["viewer"], _objects(ids)[1]),
        _role,
    ),
    (
        "invitation_created",
        lambda ids: invitations.create(
            _objects(ids)[0], "someone@example.com", "admin", _objects(ids)[1]
        ),
        lambda ids: db.session.scalar(select(func.count()).select_from(Invitation)),
    ),
    (
        "invitation_resent",
        lambda ids: invitations.resend(_objects(ids)[3], _objects(ids)[1]),
        lambda ids: db.session.get(Invitation, ids["invitation"]).token_hash,
    ),
    (
        "invitation_revoked",
        lambda ids: invitations.revoke(_objects(ids)[3], _objects(ids)[1]),
        lambda ids: db.session.get(Invitation, ids["invitation"]).revoked_at,
    ),
    (
        "invitation_accepted",
        lambda ids: invitations.accept(_objects(ids)[3], _invitee()),
        # Claimed by an UPDATE statement: read the column, not the loaded object.
        lambda ids: db.session.scalar(
            select(Invitation.accepted_at).where(Invitation.id == ids["invitation"])
        ),
    ),
]


def _entries(action: str) -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.mark.parametrize(("action", "do", "state"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_the_entry_commits_with_its_action_or_not_at_all(app, client, action, do, state):
    ids = _setup(app, client)
    with app.app_context():
        before_state, before_entries = state(ids), len(_entries(action))
        session = db.session()
        seen: dict = {}

        def fail_inside_the_commit(inner) -> None:
            """Flush, look at what this transaction holds, then make the commit fail."""
            inner.flush()
            seen["entries"] = len(_entries(action))
            seen["state"] = state(ids)
            raise CommitFailed

        event.listen(session, "before_commit", fail_inside_the_commit)
        try:
            with pytest.raises(CommitFailed):
                do(ids)
        finally:
            event.remove(session, "before_commit", fail_inside_the_commit)
        db.session.rollback()
        # Inside the failed transaction: the change and its entry, together.
        assert seen["entries"] == before_entries + 1
        assert seen["state"] != before_state
        # After it: neither.
        assert len(_entries(action)) == before_entries
        assert state(ids) == before_state
        # The same action, committed, writes exactly one entry, and no secret.
        do(ids)
        assert len(_entries(action)) == before_entries + 1
        assert state(ids) != before_state
        for entry in db.session.scalars(select(AuditEntry)):
            text = f"{entry.actor} {entry.subject} {entry.details}"
            for secret in ids["secrets"]:
                assert secret not in text


def test_an_invitation_accepted_late_writes_nothing(app, client):
    """A refused action (here: an expired invitation) leaves no entry."""
    ids = _setup(app, client)
    with app.app_context():
        invitation = _objects(ids)[3]
        later = utcnow() + timedelta(days=8)
        with pytest.raises(invitations.InvitationRefused):
            invitations.accept(invitation, _invitee(), now=later)
        db.session.rollback()
        assert _entries("invitation_accepted") == []
