"""The audit log: what is recorded (never a secret), the owners' page with its filters
and CSV, its keeping periods, and the migration that turned the erasure log into it."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import select, text

from datalook import erasure
from datalook.accounts import audit, invitations, members
from datalook.analytics import worker
from datalook.extensions import db
from datalook.models import AuditEntry, Event, Invitation, Site, SiteMember, User, utcnow
from tests.conftest import _make_app, add_site, csrf_from, post_form, sign_up
from tests.test_postgres import pg_app  # noqa: F401 - the PostgreSQL app fixture


def entries(app, action: str | None = None) -> list[AuditEntry]:
    """The stored entries (of one action), oldest first, detached."""
    with app.app_context():
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        found = list(db.session.scalars(query))
        db.session.expunge_all()
        return found


def test_sign_ins_keys_and_settings_are_recorded_without_secrets(app, client, owner):
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/sites/").text)})
    logged_in = post_form(
        client, "/login", {"email": "owner@example.com", "password": "correct horse battery"}
    )
    assert logged_in.status_code == 302
    created = post_form(client, f"/sites/{owner}/keys/", {"name": "Prod"})
    if created.status_code in (302, 303):  # the show-once page a create form redirects to
        created = client.get(created.headers["Location"])
    token = created.get_data(as_text=True).split('id="new-token">')[1].split("<")[0]
    key_id = token.split("_")[2]
    revoke_url = f"/sites/{owner}/keys/{key_id}/revoke"
    assert post_form(client, revoke_url, {}).status_code == 302
    settings = post_form(
        client, f"/sites/{owner}/settings", {"timezone": "Europe/Berlin", "currency": "EUR"}
    )
    assert settings.status_code == 302
    actions = [e.action for e in entries(app)]
    assert actions == ["site_created", "sign_in", "key_created", "key_revoked", "settings_changed"]
    secret = token.split("_", 3)[3]
    for entry in entries(app):
        assert secret not in f"{entry.subject} {entry.details}"
        assert entry.actor == "owner@example.com"
    key_entry = entries(app, "key_created")[0]
    assert key_entry.subject == key_id and key_entry.site_domain == "example.com"
    assert '"timezone": "Europe/Berlin"' in entries(app, "settings_changed")[0].details


def test_the_audit_page_filters_and_downloads_csv(app, client, owner):
    post_form(client, f"/sites/{owner}/keys/", {"name": "=cmd|' /C calc'!A0"})
    post_form(
        client,
        f"/sites/{owner}/members/invite",
        {"email": "zed@example.com", "role": "admin"},
        form_url=f"/sites/{owner}/members",
    )
    page = client.get(f"/sites/{owner}/audit").get_data(as_text=True)
    assert "Created an API key" in page and "Invited someone" in page
    only = client.get(f"/sites/{owner}/audit?action=invitation_created").get_data(as_text=True)
    assert 'data-action="invitation_created"' in only
    assert 'data-action="key_created"' not in only
    today = utcnow().date()
    later = (today + timedelta(days=2)).isoformat()
    none = client.get(f"/sites/{owner}/audit?from={later}").get_data(as_text=True)
    assert "No entries match" in none
    by_actor = client.get(f"/sites/{owner}/audit?actor=nobody@").get_data(as_text=True)
    assert "No entries match" in by_actor
    download = client.get(f"/sites/{owner}/audit.csv?to={today.isoformat()}")
    assert download.status_code == 200 and download.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(download.get_data(as_text=True))))
    assert rows[0] == ["time_utc", "actor", "action", "subject", "events_deleted", "details"]
    assert [r[2] for r in rows[1:]] == ["invitation_created", "key_created", "site_created"]
    # The key's name is a detail: a spreadsheet must not run it as a formula.
    assert rows[2][5].startswith("{") and "=cmd" in rows[2][5]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("action=drop_tables", "action"),
        ("from=yesterday", "from"),
        ("to=2026-02-30", "to"),
        ("from=2026-05-02&to=2026-05-01", "to"),
        ("before=-1", "before"),
        ("actor=" + "a" * 301, "actor"),
    ],
)
def test_bad_audit_filters_are_a_400_naming_the_field(client, owner, query, field):
    page = client.get(f"/sites/{owner}/audit?{query}")
    assert page.status_code == 400
    assert f'data-field="{field}"' in page.get_data(as_text=True)
    if field != "before":
        download = client.get(f"/sites/{owner}/audit.csv?{query}")
        assert download.status_code == 400
        assert f"{field}:" in download.get_data(as_text=True)


def test_sign_ins_show_on_the_sites_of_their_member_only(app, client, owner):
    other = app.test_client()
    sign_up(other, "other@example.com")
    other_site = add_site(other, "other.example")
    with app.app_context():
        user = db.session.scalar(select(SiteMember.user_id).where(SiteMember.site_id == other_site))
        audit.record(None, "other@example.com", "sign_in", "other@example.com")
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        entry.actor_user_id = user
        db.session.commit()
    assert 'data-action="sign_in"' not in client.get(f"/sites/{owner}/audit").text
    assert 'data-action="sign_in"' in other.get(f"/sites/{other_site}/audit").text


def test_pruning_keeps_a_year_and_deletions_six(app):
    now = utcnow()
    ages = {
        "key_created": [timedelta(days=364), timedelta(days=366)],
        "erase_visitor": [timedelta(days=366), timedelta(days=6 * 365 + 1)],
    }
    with app.app_context():
        for action, spans in ages.items():
            for span in spans:
                entry = audit.record(None, "cli:test", action, f"{span.days}")
                entry.created_at = now - span
        db.session.commit()
        assert audit.prune(db.session(), now) == 2
        db.session.commit()
    kept = sorted((e.action, e.subject) for e in entries(app))
    assert kept == [("erase_visitor", "366"), ("key_created", "364")]


def _aged_entry(app, subject: str, days: int) -> None:
    """Record a key_created entry `days` old."""
    with app.app_context():
        entry = audit.record(None, "cli:test", "key_created", subject)
        entry.created_at = utcnow() - timedelta(days=days)
        db.session.commit()


def test_the_fold_process_prunes_the_audit_log_once_a_day(app):
    _aged_entry(app, "old", 400)
    _aged_entry(app, "young", 10)
    folder = worker.folder_for(app)
    folder._tick()  # the leader's first tick prunes
    assert [e.subject for e in entries(app)] == ["young"]

    _aged_entry(app, "older", 500)
    folder._tick()  # the same day: nothing more is pruned
    assert [e.subject for e in entries(app)] == ["young", "older"]

    folder._pruned_at -= worker.AUDIT_PRUNE_EVERY_S  # a day later
    folder._tick()
    assert [e.subject for e in entries(app)] == ["young"]


def test_a_retention_run_prunes_the_audit_log(app, owner):
    with app.app_context():
        old = audit.record(None, "cli:test", "key_created", "old")
        old.created_at = utcnow() - timedelta(days=400)
        db.session.commit()
    result = app.test_cli_runner().invoke(
        args=["events", "delete", "--site", "example.com", "--before", "2020-01-01"]
    )
    assert result.exit_code == 0, result.output
    assert [e.subject for e in entries(app) if e.subject == "old"] == []
    assert entries(app, "delete_before")[0].actor.startswith("cli")


def test_a_refused_change_writes_no_entry(app, client, owner):
    before = len(entries(app))
    with app.app_context():
        me = db.session.scalar(select(SiteMember.user_id))
    members = f"/sites/{owner}/members"
    refused = post_form(client, f"{members}/{me}/role", {"role": "viewer"}, members)
    assert refused.status_code == 400
    assert len(entries(app)) == before


def test_an_unknown_action_is_a_programming_error(app):
    with app.app_context(), pytest.raises(ValueError, match="audit.LABELS"):
        audit.record(None, None, "made_up", "x")


_OLD_SITE = (
    "INSERT INTO users (id, email, password_hash, created_at) VALUES (7, 'old@example.com', 'x', "
    ":at); INSERT INTO sites (id, owner_id, domain, created_at, key_serial, timezone, currency) "
    "VALUES (5, 7, 'old.example', :at, 0, 'UTC', 'USD')"
)


def _migrates_owners_and_the_erasure_log(app) -> None:
    """At 0018: a user, their site and an erasure entry; after the upgrade, an owner
    membership and the entry with the site's domain; new entries get fresh ids."""
    at = utcnow()
    with app.app_context():
        for statement in _OLD_SITE.split("; "):
            db.session.execute(text(statement), {"at": at})
        db.session.execute(
            text(
                "INSERT INTO audit_log (site_id, actor, action, subject, events_deleted, "
                "created_at) VALUES (5, 'old@example.com', 'erase_visitor', 'sha256:ab', 3, :at)"
            ),
            {"at": at},
        )
        db.session.commit()
        upgrade()
        db.session.remove()
        member = db.session.scalars(select(SiteMember)).one()
        assert (member.site_id, member.user_id, member.role) == (5, 7, "owner")
        entry = db.session.scalars(select(AuditEntry)).one()
        assert (entry.site_id, entry.site_domain, entry.action, entry.events_deleted) == (
            5,
            "old.example",
            "erase_visitor",
            3,
        )
        audit.record(db.session.get(Site, 5), "cli:test", "site_deleted", "old.example")
        db.session.execute(text("DELETE FROM sites WHERE id = 5"))
        db.session.commit()
        # The entries outlive the site.
        assert len(db.session.scalars(select(AuditEntry)).all()) == 2
        db.session.remove()
        db.engine.dispose()


def test_the_migration_makes_owners_members_and_keeps_the_erasure_log(tmp_path):
    app = _make_app(tmp_path / "old")
    with app.app_context():
        upgrade(revision="0018")
    _migrates_owners_and_the_erasure_log(app)


def test_the_migration_on_postgresql(pg_app):  # noqa: F811 - the imported fixture
    with pg_app.app_context():
        downgrade(revision="0018")
        db.session.remove()
    _migrates_owners_and_the_erasure_log(pg_app)
    with pg_app.app_context():
        downgrade(revision="0018")  # and back again
        upgrade()
        db.session.remove()
        db.engine.dispose()


def test_members_invitations_and_deleting_a_site_on_postgresql(pg_app):  # noqa: F811
    with pg_app.app_context():
        owner, guest = User(email="o@pg.example"), User(email="g@pg.example")
        for user in (owner, guest):
            user.password_hash = "x"
            db.session.add(user)
        db.session.commit()
        site = members.new_site(owner, "pg.example")
        assert site is not None and members.new_site(owner, "pg.example") is None
        with pytest.raises(members.MemberRefused, match="last owner"):
            members.change_role(site, owner.id, "viewer", owner)
        issued = invitations.create(site, "g@pg.example", "admin", owner)
        assert invitations.find(issued.token).id == issued.invitation.id
        assert invitations.accept(issued.invitation, guest).role == "admin"
        with pytest.raises(invitations.InvitationRefused, match="already used"):
            invitations.accept(db.session.get(Invitation, issued.invitation.id), guest)
        members.change_role(site, guest.id, "owner", owner)
        members.remove_member(site, owner.id, owner, leaving=True)
        assert [(m.user.email, m.role) for m in members.members_of(site)] == [
            ("g@pg.example", "owner")
        ]
        site_id = site.id
        db.session.add(
            Event(
                site_id=site_id,
                event_name="pageview",
                page_path="/",
                visitor_id="a:1",
                occurred_at=utcnow(),
                received_at=utcnow(),
            )
        )
        db.session.commit()
        with pg_app.test_request_context():
            assert erasure.delete_site(db.session.get(Site, site_id), guest) == 1
        assert db.session.get(Site, site_id) is None
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.site_id == site_id).order_by(AuditEntry.id)
        ).all()
        assert actions == [
            "site_created",
            "invitation_created",
            "invitation_accepted",
            "member_role_changed",
            "member_left",
            "site_deleted",
        ]


def test_failed_sign_ins_are_recorded_for_the_account_and_shown_on_its_sites(app, client, owner):
    other = app.test_client()
    sign_up(other, "other@example.com")
    other_site = add_site(other, "other.example")
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/sites/").text)})
    guesses = {"owner@example.com": "wrong guess one", "nobody@example.com": "wrong guess two"}
    for email, password in guesses.items():
        refused = post_form(client, "/login", {"email": email, "password": password})
        assert refused.status_code == 400
    failed = entries(app, "sign_in_failed")
    # Only the existing account's failure: an unknown address is not recorded.
    assert [(e.subject, e.site_id) for e in failed] == [("owner@example.com", None)]
    with app.app_context():
        me = db.session.scalar(select(User.id).where(User.email == "owner@example.com"))
    assert failed[0].actor_user_id == me
    for entry in entries(app):
        text_of = f"{entry.actor} {entry.subject} {entry.details}"
        assert not any(guess in text_of for guess in guesses.values())
        assert "nobody@example.com" not in text_of
    logged_in = post_form(
        client, "/login", {"email": "owner@example.com", "password": "correct horse battery"}
    )
    assert logged_in.status_code == 302
    page = client.get(f"/sites/{owner}/audit?action=sign_in_failed").text
    assert 'data-action="sign_in_failed"' in page
    assert 'data-action="sign_in_failed"' not in other.get(f"/sites/{other_site}/audit").text
