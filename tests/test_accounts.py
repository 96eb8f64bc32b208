"""Sign-up, log-in, log-out, CSRF and the session cookie."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from datalook.extensions import db
from datalook.models import User
from tests.conftest import csrf_from, post_form, sign_up


def user_count(app) -> int:
    """Count the accounts in the database."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


def test_sign_up_logs_in_and_normalises_email(app, client):
    sign_up(client, email="  Alice@Example.COM ")
    assert "alice@example.com" in client.get("/sites/").get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.email == "alice@example.com"
        assert user.password_hash.startswith("$2")  # bcrypt, never the password itself
        assert user.check_password("correct horse battery")


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("bob@example.com", "short", "Use at least 10 characters."),
        ("bob@example.com", "", "This field is required."),
        ("not-an-email", "long enough pw", "An email address must have an @-sign."),
        ("bob@example.com", "BOB@example.com", "must not be your email"),
    ],
)
def test_sign_up_refuses_bad_input_with_message_next_to_field(
    app, client, email, password, message
):
    response = post_form(client, "/signup", {"email": email, "password": password})
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert user_count(app) == 0


@pytest.mark.parametrize(
    ("email", "accepted"),
    [
        ("owner@example.test", True),  # reserved test domains are fine in both ways in
        ("Owner@Staging.Example.TEST", True),
        ("ops@example.org", True),
        ("not-an-email", False),
        ("two@@example.com", False),
        ("nodot@localhost", False),
        ("spaces in@example.com", False),
        ("x" * 250 + "@example.com", False),
    ],
)
def test_the_form_and_the_cli_apply_one_email_rule(make_app, email, accepted):
    web_app = make_app()
    signed_up = post_form(
        web_app.test_client(), "/signup", {"email": email, "password": "correct horse battery"}
    )
    assert (signed_up.status_code == 302) is accepted, signed_up.get_data(as_text=True)[-600:]

    cli_app = make_app()
    created = cli_app.test_cli_runner().invoke(
        args=["users", "create", email, "--password", "correct horse battery"]
    )
    assert (created.exit_code == 0) is accepted, created.output
    if accepted:
        assert f"Created user {email.strip().lower()}" in created.output
    else:
        assert "is not an email address" in created.output
    assert user_count(cli_app) == (1 if accepted else 0)


def test_emails_are_unique_regardless_of_case(app, client):
    sign_up(client, email="carol@example.com")
    client.post(
        "/logout", data={"csrf_token": csrf_from(client.get("/sites/").get_data(as_text=True))}
    )
    response = post_form(
        client, "/signup", {"email": "CAROL@example.com", "password": "another long one"}
    )
    assert response.status_code == 400
    assert "already exists" in response.get_data(as_text=True)
    assert user_count(app) == 1


def test_log_in_and_out(client):
    sign_up(client)
    page = client.get("/sites/").get_data(as_text=True)
    assert client.post("/logout", data={"csrf_token": csrf_from(page)}).status_code == 302
    assert client.get("/sites/").status_code == 302  # back to the log-in page
    wrong = post_form(
        client, "/login", {"email": "owner@example.com", "password": "wrong password!"}
    )
    assert wrong.status_code == 400
    assert "Email or password is incorrect." in wrong.get_data(as_text=True)
    unknown = post_form(
        client, "/login", {"email": "nobody@example.com", "password": "whatever123"}
    )
    assert "Email or password is incorrect." in unknown.get_data(as_text=True)
    ok = post_form(
        client, "/login", {"email": "OWNER@example.com", "password": "correct horse battery"}
    )
    assert ok.status_code == 302
    assert client.get("/sites/").status_code == 200


def test_log_in_redirects_only_to_local_pages(client):
    sign_up(client)
    page = client.get("/sites/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_from(page)})
    form = client.get("/login").get_data(as_text=True)
    response = client.post(
        "/login?next=//evil.example/steal",
        data={
            "email": "owner@example.com",
            "password": "correct horse battery",
            "csrf_token": csrf_from(form),
        },
    )
    assert response.headers["Location"] == "/sites/"


def test_session_cookie_flags(client):
    response = sign_up(client)
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain HTTP here
    secure = post_form(
        client, "/login", {"email": "owner@example.com", "password": "correct horse battery"}
    )
    del secure


def test_session_cookie_is_secure_over_https(app):
    client = app.test_client()
    page = client.get("/signup", base_url="https://localhost")
    response = client.post(
        "/signup",
        base_url="https://localhost",
        data={
            "email": "s@example.com",
            "password": "correct horse battery",
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
        headers={"Referer": "https://localhost/signup"},
    )
    assert response.status_code == 302
    assert "Secure" in response.headers["Set-Cookie"]


@pytest.mark.parametrize(
    ("url", "data"),
    [
        ("/signup", {"email": "x@example.com", "password": "correct horse battery"}),
        ("/login", {"email": "x@example.com", "password": "correct horse battery"}),
    ],
)
def test_forms_without_csrf_token_are_refused(app, client, url, data):
    assert client.post(url, data=data).status_code == 400
    assert user_count(app) == 0


def test_sign_up_is_rate_limited_per_address(app, client):
    token = csrf_from(client.get("/signup").get_data(as_text=True))
    bad = {"email": "", "password": "", "csrf_token": token}
    statuses = [client.post("/signup", data=bad).status_code for _ in range(11)]
    assert statuses[:10] == [400] * 10
    assert statuses[10] == 429
    refused = client.post("/signup", data=bad)
    assert "Too many attempts" in refused.get_data(as_text=True)
    assert int(refused.headers["Retry-After"]) >= 1
