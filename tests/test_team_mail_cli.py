"""Invitation emails through a real SMTP server (aiosmtpd, started here), the mail
settings' validation, and `flask members add|list|remove`."""

from __future__ import annotations

import socket
from email import message_from_bytes
from email.message import Message

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from datalook.config import ConfigError, from_environ
from datalook.extensions import db
from datalook.models import AuditEntry, Invitation, Site
from tests.conftest import add_site, post_form, sign_up
from tests.factories import make_site, make_user
from tests.test_teams import link_of


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        """Start empty."""
        self.messages: list[tuple[str, list[str], Message]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        """Keep the message; answer 250."""
        parsed = message_from_bytes(envelope.original_content or envelope.content)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp():
    """A real SMTP server on a free local port, stopped after the test."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller.port, inbox
    controller.stop()


def _owner_with_site(app) -> tuple:
    """A logged-in owner's client and their site id."""
    client = app.test_client()
    sign_up(client)
    return client, add_site(client)


def test_an_invitation_is_emailed_through_smtp(make_app, smtp):
    port, inbox = smtp
    app = make_app(SMTP_URL=f"smtp://127.0.0.1:{port}", MAIL_FROM="team@datalook.example")
    client, site_id = _owner_with_site(app)
    members = f"/sites/{site_id}/members"
    assert "We email it to them" in client.get(members).get_data(as_text=True)
    sent = post_form(
        client, f"{members}/invite", {"email": "kim@example.com", "role": "admin"}, members
    )
    assert sent.status_code == 200
    assert "We emailed the link to kim@example.com" in sent.get_data(as_text=True)
    path = link_of(sent)
    assert len(inbox.messages) == 1
    sender, recipients, message = inbox.messages[0]
    assert sender == "team@datalook.example" and recipients == ["kim@example.com"]
    assert message["Subject"] == "Join example.com on DataLook"
    body = message.get_payload(decode=True).decode()
    assert path in body and "as admin" in body and "log in or sign up as kim@example.com" in body
    with app.app_context():
        invitation = db.session.scalars(select(Invitation)).one()
        assert invitation.sent_at is not None
    # Re-sending emails a new link; the first one no longer works.
    again = post_form(client, f"/sites/{site_id}/invitations/{invitation.id}/resend", {}, members)
    assert again.status_code == 200
    assert len(inbox.messages) == 2
    second = inbox.messages[1][2].get_payload(decode=True).decode()
    assert link_of(again) in second and path not in second
    assert client.get(path).status_code == 404


def test_an_unreachable_smtp_server_still_shows_the_link(make_app):
    app = make_app(SMTP_URL=f"smtp://127.0.0.1:{_free_port()}", MAIL_FROM="team@datalook.example")
    client, site_id = _owner_with_site(app)
    members = f"/sites/{site_id}/members"
    sent = post_form(client, f"{members}/invite", {"email": "lee@example.com"}, members)
    assert sent.status_code == 200
    assert "The email could not be sent" in sent.get_data(as_text=True)
    assert link_of(sent).startswith("/invitations/dli_")
    with app.app_context():
        assert db.session.scalars(select(Invitation.sent_at)).one() is None


def test_without_smtp_nothing_is_sent_and_the_page_says_so(app, client, owner, smtp):
    _, inbox = smtp
    members = f"/sites/{owner}/members"
    assert "This server sends no email" in client.get(members).get_data(as_text=True)
    sent = post_form(client, f"{members}/invite", {"email": "max@example.com"}, members)
    assert "No email was sent" in sent.get_data(as_text=True)
    assert inbox.messages == []


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"SMTP_URL": "http://mail.example"}, "scheme must be smtp:// or smtps://"),
        ({"SMTP_URL": "smtp://"}, "names no host"),
        ({"SMTP_URL": "smtps://u:hunter2@mail.example:99999"}, "port must be a number"),
        ({"SMTP_URL": "smtp://mail.example:587"}, "MAIL_FROM must be set with SMTP_URL"),
        ({"SMTP_URL": "smtp://mail.example", "MAIL_FROM": "nobody"}, "MAIL_FROM must be an"),
    ],
)
def test_bad_mail_settings_are_refused_clearly(tmp_path, environ, message):
    with pytest.raises(ConfigError, match=message) as raised:
        from_environ(environ, tmp_path)
    assert "hunter2" not in str(raised.value)  # a password in the URL is never echoed


def test_good_mail_settings(tmp_path):
    config = from_environ(
        {"SMTP_URL": "smtps://u:p@mail.example", "MAIL_FROM": "Team@Example.com"}, tmp_path
    )
    assert config["SMTP_URL"] == "smtps://u:p@mail.example"
    assert config["MAIL_FROM"] == "Team@example.com"
    assert from_environ({}, tmp_path)["SMTP_URL"] is None


def _cli(app, *args):
    """Run a flask command; (exit code, stdout, stderr)."""
    result = app.test_cli_runner().invoke(args=list(args))
    return result.exit_code, result.stdout, result.stderr


def test_members_cli(app):
    with app.app_context():
        owner = make_user("own@example.com")
        make_site(owner, "cli.example")
        make_user("view@example.com")
    code, _, err = _cli(app, "members", "add", "cli.example", "View@Example.com")
    assert code == 0 and "view@example.com is now viewer of cli.example" in err
    code, out, _ = _cli(app, "members", "list", "cli.example")
    assert out == "own@example.com\towner\nview@example.com\tviewer\n"
    code, _, _ = _cli(app, "members", "remove", "cli.example", "view@example.com")
    assert code == 0
    assert _cli(app, "members", "list", "cli.example")[1] == "own@example.com\towner\n"
    with app.app_context():
        site_id = db.session.scalar(select(Site.id))
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.site_id == site_id)
        ).all()
    assert actions == ["member_added", "member_removed"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["add", "nope.example", "view@example.com"], "Error: no site 'nope.example'"),
        (["add", "cli.example", "ghost@example.com"], "Error: no user 'ghost@example.com'"),
        (
            ["add", "cli.example", "view@example.com", "--role", "boss"],
            "Error: --role must be one of viewer, admin, owner, got 'boss'",
        ),
        (["add", "cli.example", "own@example.com"], "own@example.com is already a member"),
        (["remove", "cli.example", "view@example.com"], "Error: That person is not a member"),
        (
            ["remove", "cli.example", "own@example.com"],
            "Error: own@example.com is the last owner of cli.example",
        ),
        (["list", "not a domain"], "Error: "),
    ],
)
def test_members_cli_refusals_are_one_line(app, args, error):
    with app.app_context():
        make_site(make_user("own@example.com"), "cli.example")
        make_user("view@example.com")
    code, out, err = _cli(app, "members", *args)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and error in err, err
