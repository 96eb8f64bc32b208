"""Members and roles through the real pages: invitations from sending to accepting, the
last-owner rule, removal on the very next request, what a viewer is refused, deleting a
site, and CSRF on every new form."""

from __future__ import annotations

import hashlib
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from datalook.accounts import invitations
from datalook.extensions import db
from datalook.models import (
    AuditEntry,
    Event,
    Invitation,
    RefusedRequest,
    Site,
    SiteMember,
    User,
    utcnow,
)
from tests.conftest import csrf_from, post_form, sign_up
from tests.factories import bearer, make_key

LINK = re.compile(r'id="new-link">([^<]+)<')


def invite(client, site_id: int, email: str, role: str = "viewer"):
    """Invite through the members page; return the response."""
    return post_form(
        client,
        f"/sites/{site_id}/members/invite",
        {"email": email, "role": role},
        form_url=f"/sites/{site_id}/members",
    )


def link_of(response) -> str:
    """The invitation link a members page shows once (its path)."""
    match = LINK.search(response.get_data(as_text=True))
    assert match, response.get_data(as_text=True)[:2000]
    return re.sub(r"^https?://[^/]+", "", match.group(1))


def role_of(app, site_id: int, email: str) -> str | None:
    """A user's role on a site, from the table."""
    with app.app_context():
        return db.session.scalar(
            select(SiteMember.role)
            .join(User, User.id == SiteMember.user_id)
            .where(SiteMember.site_id == site_id, User.email == email)
        )


def user_id(app, email: str) -> int:
    """The id of the account with this email."""
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def audit_actions(app) -> list[str]:
    """Every audit entry's action, oldest first."""
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def accept(client, path: str):
    """Accept an invitation from its page (CSRF token from the page)."""
    return post_form(client, path, {})


@pytest.fixture
def team(app, client, owner):
    """The owner's client and site, and a second client for the invitee."""
    return client, owner, app.test_client()


def test_invited_viewer_signs_up_from_the_link_and_accepts(app, team):
    owner_client, site_id, invitee = team
    sent = invite(owner_client, site_id, "Bob@Example.com", "viewer")
    assert sent.status_code == 200
    assert "No email was sent" in sent.get_data(as_text=True)
    path = link_of(sent)
    token = path.rsplit("/", 1)[1]
    with app.app_context():
        stored = db.session.scalars(select(Invitation)).one()
        # Only the digest is stored; the address is kept in its canonical form.
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in (stored.token_hash, stored.email)
        assert stored.email == "bob@example.com" and stored.role == "viewer"

    page = invitee.get(path)
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "example.com" in text and "viewer" in text
    assert "Sign up as bob@example.com" in text
    signup_url = re.search(r'href="(/signup\?[^"]+)"', text).group(1).replace("&amp;", "&")
    form = invitee.get(signup_url).get_data(as_text=True)
    assert 'value="bob@example.com"' in form  # the address is filled in
    created = invitee.post(
        signup_url,
        data={
            "email": "bob@example.com",
            "password": "correct horse battery",
            "csrf_token": csrf_from(form),
        },
    )
    assert created.status_code == 302 and created.headers["Location"] == path
    accepted = accept(invitee, path)
    assert accepted.status_code == 302
    assert accepted.headers["Location"].endswith(f"/sites/{site_id}/")
    assert role_of(app, site_id, "bob@example.com") == "viewer"
    assert invitee.get(f"/sites/{site_id}/").status_code == 200
    sites = invitee.get("/sites/").get_data(as_text=True)
    assert "example.com" in sites and "viewer" in sites
    # Single use: the same link again is refused, and changes nothing.
    again = invitee.post(path, data={"csrf_token": csrf_from(sites)})
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    assert "invitation_created" in audit_actions(app)
    assert "invitation_accepted" in audit_actions(app)


def test_an_invitation_is_refused_to_another_address(app, team):
    owner_client, site_id, other = team
    path = link_of(invite(owner_client, site_id, "carol@example.com"))
    sign_up(other, "mallory@example.com")
    page = other.get(path)
    assert "This invitation is for carol@example.com" in page.get_data(as_text=True)
    refused = accept(other, path)
    assert refused.status_code == 403
    assert "you are logged in as mallory@example.com" in refused.get_data(as_text=True)
    assert role_of(app, site_id, "mallory@example.com") is None
    with app.app_context():
        assert db.session.scalars(select(Invitation.accepted_at)).one() is None


def test_an_expired_invitation_is_refused(app, team):
    owner_client, site_id, invitee = team
    with app.app_context():
        site = db.session.get(Site, site_id)
        owner = db.session.get(User, site.owner_id)
        # Made 8 days ago (computed now): past its 7 days.
        issued = invitations.create(
            site, "late@example.com", "viewer", owner, now=utcnow() - timedelta(days=8)
        )
    path = f"/invitations/{issued.token}"
    page = invitee.get(path)
    assert page.status_code == 410 and "expired" in page.get_data(as_text=True)
    sign_up(invitee, "late@example.com")
    assert accept(invitee, path).status_code == 410
    assert role_of(app, site_id, "late@example.com") is None
    # The owner sees it expired, and re-sending gives it a new link and 7 more days.
    listed = owner_client.get(f"/sites/{site_id}/members").get_data(as_text=True)
    assert re.search(r'data-invitation="late@example.com">.*?expired', listed, re.S)


def test_revoked_and_resent_invitations(app, team):
    owner_client, site_id, invitee = team
    first = link_of(invite(owner_client, site_id, "dave@example.com", "admin"))
    with app.app_context():
        invitation_id = db.session.scalar(select(Invitation.id))
    resent = post_form(
        owner_client,
        f"/sites/{site_id}/invitations/{invitation_id}/resend",
        {},
        form_url=f"/sites/{site_id}/members",
    )
    assert resent.status_code == 200
    second = link_of(resent)
    assert second != first
    assert invitee.get(first).status_code == 404  # the old link stopped working
    assert invitee.get(second).status_code == 200
    revoked = post_form(
        owner_client,
        f"/sites/{site_id}/invitations/{invitation_id}/revoke",
        {},
        form_url=f"/sites/{site_id}/members",
    )
    assert revoked.status_code == 302
    page = invitee.get(second)
    assert page.status_code == 410 and "revoked" in page.get_data(as_text=True)
    sign_up(invitee, "dave@example.com")
    assert accept(invitee, second).status_code == 410
    assert role_of(app, site_id, "dave@example.com") is None
    actions = audit_actions(app)
    assert "invitation_resent" in actions and "invitation_revoked" in actions


def test_inviting_a_member_or_a_pending_address_is_refused(app, team):
    owner_client, site_id, _ = team
    refused = invite(owner_client, site_id, "owner@example.com")
    assert refused.status_code == 400
    assert "already a member" in refused.get_data(as_text=True)
    assert invite(owner_client, site_id, "erin@example.com").status_code == 200
    twice = invite(owner_client, site_id, "erin@example.com")
    assert twice.status_code == 400 and "pending invitation" in twice.get_data(as_text=True)
    bad = invite(owner_client, site_id, "not an address")
    assert bad.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Invitation)) == 1


def _join(app, owner_client, site_id, client, email, role):
    """Invite `email` as `role`, sign up as them in `client`, accept."""
    path = link_of(invite(owner_client, site_id, email, role))
    sign_up(client, email)
    assert accept(client, path).status_code == 302
    return user_id(app, email)


def test_the_last_owner_can_neither_leave_nor_be_demoted(app, team):
    owner_client, site_id, second = team
    me = user_id(app, "owner@example.com")
    members_url = f"/sites/{site_id}/members"
    demoted = post_form(owner_client, f"{members_url}/{me}/role", {"role": "admin"}, members_url)
    assert demoted.status_code == 400
    assert "You are" not in demoted.get_data(as_text=True)
    assert "the last owner of example.com" in demoted.get_data(as_text=True)
    left = post_form(owner_client, f"{members_url}/leave", {}, members_url)
    assert left.status_code == 400
    assert "You are the last owner of example.com" in left.get_data(as_text=True)
    assert role_of(app, site_id, "owner@example.com") == "owner"
    assert "member_role_changed" not in audit_actions(app)
    # With a second owner, the first may step down.
    _join(app, owner_client, site_id, second, "frank@example.com", "owner")
    stepped = post_form(owner_client, f"{members_url}/{me}/role", {"role": "viewer"}, members_url)
    assert stepped.status_code == 302
    assert role_of(app, site_id, "owner@example.com") == "viewer"
    # Now frank is the last owner.
    frank = user_id(app, "frank@example.com")
    assert owner_client.get(members_url).status_code == 200
    refused = post_form(second, f"{members_url}/{frank}/role", {"role": "admin"}, members_url)
    assert refused.status_code == 400
    assert "frank@example.com is the last owner of example.com" in refused.get_data(as_text=True)


def test_removal_acts_on_the_very_next_request(app, team):
    owner_client, site_id, viewer = team
    viewer_id = _join(app, owner_client, site_id, viewer, "gina@example.com", "viewer")
    assert viewer.get(f"/sites/{site_id}/stats.json").status_code == 200
    assert viewer.get(f"/sites/{site_id}/").status_code == 200
    members_url = f"/sites/{site_id}/members"
    removed = post_form(owner_client, f"{members_url}/{viewer_id}/remove", {}, members_url)
    assert removed.status_code == 302
    # The same session, the next requests: the site is not there any more.
    assert viewer.get(f"/sites/{site_id}/stats.json").status_code == 404
    assert viewer.get(f"/sites/{site_id}/live.json").status_code == 404
    assert viewer.get(f"/sites/{site_id}/").status_code == 404
    assert f'href="/sites/{site_id}/"' not in viewer.get("/sites/").get_data(as_text=True)
    assert "member_removed" in audit_actions(app)


def test_a_viewer_is_refused_keys_erasure_and_settings_with_the_role_needed(app, team):
    owner_client, site_id, viewer = team
    _join(app, owner_client, site_id, viewer, "hal@example.com", "viewer")
    for path, role in (
        (f"/sites/{site_id}/keys/", "admin"),
        (f"/sites/{site_id}/settings", "admin"),
        (f"/sites/{site_id}/privacy", "owner"),
        (f"/sites/{site_id}/audit", "owner"),
        (f"/sites/{site_id}/delete", "owner"),
    ):
        page = viewer.get(path)
        assert page.status_code == 403, path
        assert f"This needs the {role} role on this site; you are a viewer." in page.get_data(
            as_text=True
        )
    overview = viewer.get(f"/sites/{site_id}/").get_data(as_text=True)
    assert "API keys" not in overview and "Report settings" not in overview
    refused = viewer.get(f"/sites/{site_id}/keys/k/status.json")
    assert refused.status_code == 403
    assert refused.get_json()["error"] == {
        "code": "role_required",
        "message": "This needs the admin role on this site; you are a viewer.",
        "required_role": "admin",
        "role": "viewer",
    }


def test_the_live_view_shows_refused_bodies_to_admins_only(app, team):
    owner_client, site_id, viewer = team
    _join(app, owner_client, site_id, viewer, "ivy@example.com", "viewer")
    with app.app_context():
        db.session.add(
            RefusedRequest(
                site_id=site_id,
                received_at=utcnow(),
                status=400,
                code="invalid_request",
                message="bad",
                excerpt='{"event_name": 1}',
            )
        )
        db.session.commit()

    def excerpt(client):
        items = client.get(f"/sites/{site_id}/live.json").get_json()["items"]
        return [item["excerpt"] for item in items if item["kind"] == "refused"]

    assert excerpt(owner_client) == ['{"event_name": 1}']
    assert excerpt(viewer) == [None]


def test_deleting_a_site_needs_its_domain_typed_and_keeps_the_audit_entry(app, team):
    owner_client, site_id, _ = team
    with app.app_context():
        made = make_key(db.session.get(Site, site_id))
    event = {"event_name": "pageview", "page_path": "/"}
    assert owner_client.post("/event", json=event, headers=bearer(made.token)).status_code == 204
    url = f"/sites/{site_id}/delete"
    wrong = post_form(owner_client, url, {"confirm": "example.org"})
    assert wrong.status_code == 400
    assert "Type example.com exactly" in wrong.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Site, site_id) is not None
    done = post_form(owner_client, url, {"confirm": "example.com"})
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(Site, site_id) is None
        assert db.session.scalar(select(func.count()).select_from(Event)) == 0
        assert db.session.scalar(select(func.count()).select_from(SiteMember)) == 0
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "site_deleted")
        ).one()
        assert (entry.site_id, entry.site_domain, entry.actor) == (
            site_id,
            "example.com",
            "owner@example.com",
        )
        assert entry.events_deleted == 1
    # The key is gone with the site.
    assert owner_client.post("/event", json=event, headers=bearer(made.token)).status_code == 401
    assert owner_client.get(f"/sites/{site_id}/").status_code == 404


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("members/invite", {"email": "x@example.com", "role": "viewer"}),
        ("members/{user}/role", {"role": "viewer"}),
        ("members/{user}/remove", {}),
        ("members/leave", {}),
        ("invitations/{invitation}/resend", {}),
        ("invitations/{invitation}/revoke", {}),
        ("delete", {"confirm": "example.com"}),
    ],
)
def test_every_new_form_needs_its_csrf_token(app, team, path, data):
    owner_client, site_id, _ = team
    assert invite(owner_client, site_id, "pending@example.com").status_code == 200
    with app.app_context():
        invitation = db.session.scalar(select(Invitation.id))
        me = db.session.scalar(select(User.id))
    before = audit_actions(app)
    url = f"/sites/{site_id}/" + path.format(user=me, invitation=invitation)
    response = owner_client.post(url, data=data)
    assert response.status_code == 400
    assert audit_actions(app) == before
    with app.app_context():
        assert db.session.get(Site, site_id) is not None
        assert db.session.scalars(select(Invitation.revoked_at)).one() is None


def test_accepting_an_invitation_needs_its_csrf_token(app, team):
    owner_client, site_id, invitee = team
    path = link_of(invite(owner_client, site_id, "jim@example.com"))
    sign_up(invitee, "jim@example.com")
    assert invitee.post(path, data={}).status_code == 400
    assert role_of(app, site_id, "jim@example.com") is None


def test_an_existing_account_logs_in_from_the_link_and_accepts(app, team):
    owner_client, site_id, invitee = team
    sign_up(invitee, "kate@example.com")
    invitee.post("/logout", data={"csrf_token": csrf_from(invitee.get("/sites/").text)})
    path = link_of(invite(owner_client, site_id, "kate@example.com", "admin"))
    page = invitee.get(path).get_data(as_text=True)
    login_url = re.search(r'href="(/login\?next=[^"]+)"', page).group(1).replace("&amp;", "&")
    logged_in = post_form(
        invitee, login_url, {"email": "kate@example.com", "password": "correct horse battery"}
    )
    assert logged_in.status_code == 302 and logged_in.headers["Location"] == path
    assert accept(invitee, path).status_code == 302
    assert role_of(app, site_id, "kate@example.com") == "admin"
    assert invitee.get(f"/sites/{site_id}/keys/").status_code == 200


def test_a_removed_members_read_key_keeps_working_until_revoked(app, team):
    """Keys belong to the site: a script set up by someone who leaves keeps its numbers;
    the owner is told which keys the removed member created and revokes what should stop."""
    owner_client, site_id, admin = team
    admin_id = _join(app, owner_client, site_id, admin, "ida@example.com", "admin")
    keys_url = f"/sites/{site_id}/keys/"
    posted = post_form(admin, keys_url, {"name": "Finance", "kind": "read"})
    assert posted.status_code == 303
    html = admin.get(posted.headers["Location"]).get_data(as_text=True)
    token = re.search(r"dl_read_[A-Za-z0-9_-]+", html).group(0)
    stats = f"/sites/{site_id}/stats.json"
    assert app.test_client().get(stats, headers=bearer(token)).status_code == 200
    members_url = f"/sites/{site_id}/members"
    removed = post_form(owner_client, f"{members_url}/{admin_id}/remove", {}, members_url)
    assert removed.status_code == 302
    note = owner_client.get(members_url).get_data(as_text=True)
    assert "ida@example.com no longer has access to example.com." in note
    assert "The 1 API key they created keeps working (keys belong to the site)" in note
    # The person is out at once; the site's key is not.
    assert admin.get(stats).status_code == 404
    assert app.test_client().get(stats, headers=bearer(token)).status_code == 200
    key_id = token.split("_")[2]
    revoke_url = f"/sites/{site_id}/keys/{key_id}/revoke"
    assert post_form(owner_client, revoke_url, {}).status_code == 302
    refused = app.test_client().get(stats, headers=bearer(token))
    assert refused.status_code == 401


def test_removing_a_member_without_keys_says_nothing_of_keys(app, team):
    owner_client, site_id, viewer = team
    viewer_id = _join(app, owner_client, site_id, viewer, "jo@example.com", "viewer")
    members_url = f"/sites/{site_id}/members"
    post_form(owner_client, f"{members_url}/{viewer_id}/remove", {}, members_url)
    page = owner_client.get(members_url).get_data(as_text=True)
    assert (
        "jo@example.com no longer has access" in page
        and "API key" not in page.split("no longer has access")[1].split("<")[0]
    )
