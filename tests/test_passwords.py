"""The password policy (form and CLI alike) and passwords longer than bcrypt's 72 bytes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import select

from datalook.accounts.passwords import check_password, hash_password, password_problem
from datalook.extensions import db
from datalook.models import User
from tests.conftest import csrf_from, post_form, sign_up
from tests.live import ROOT

LONG_ASCII = "the quick brown fox jumps over the lazy dog, " * 3  # 135 bytes
LONG_UTF8 = "ünïcödé pässwörd wïth äccénts " * 3  # 87 characters, more bytes
SAME_FIRST_72 = LONG_ASCII[:72] + "but a different ending here"

# (password, refused with a message containing ...) for a sign-up as owner@example.com.
POLICY_CASES = [
    ("password123", "too easy to guess"),
    ("qwertyuiop", "too easy to guess"),
    ("1234567890", "too easy to guess"),
    ("aaaaaaaaaaaa", "too easy to guess"),
    ("owner@example.com", "must not be your email"),
    ("short", "at least 10 characters"),
    ("x" * 201, "at most 200 characters"),
]
ACCEPTED = ["correct horse battery", LONG_ASCII, LONG_UTF8, "vivid-otter-72-lantern"]


@pytest.mark.parametrize(("password", "message"), POLICY_CASES)
def test_policy_refuses_with_a_helpful_message(password, message):
    problem = password_problem(password, "owner@example.com")
    assert problem is not None
    assert message.lower() in problem.lower()


def test_a_weak_password_gets_the_estimator_advice():
    problem = password_problem("password123", "owner@example.com")
    assert "very common password" in problem
    assert "A few unrelated words" in problem


@pytest.mark.parametrize("password", ACCEPTED)
def test_policy_accepts_strong_passwords(password):
    assert password_problem(password, "owner@example.com") is None


@pytest.mark.parametrize(("password", "message"), POLICY_CASES)
def test_sign_up_form_applies_the_policy(app, client, password, message):
    response = post_form(client, "/signup", {"email": "owner@example.com", "password": password})
    assert response.status_code == 400
    assert message.lower() in response.get_data(as_text=True).lower()
    with app.app_context():
        assert db.session.scalar(select(User)) is None


@pytest.mark.parametrize(("password", "message"), POLICY_CASES[:3])
def test_cli_users_create_applies_the_same_policy(tmp_path, password, message):
    env = {"DATALOOK_INSTANCE_PATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "users",
            "create",
            "owner@example.com",
            "--password",
            password,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert message.lower() in result.stderr.lower()


@pytest.mark.parametrize("password", [LONG_ASCII, LONG_UTF8])
def test_long_passwords_sign_up_and_log_in(client, password):
    sign_up(client, password=password)
    page = client.get("/sites/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_from(page)})
    ok = post_form(client, "/login", {"email": "owner@example.com", "password": password})
    assert ok.status_code == 302


def test_every_byte_of_a_long_password_counts(client):
    sign_up(client, password=LONG_ASCII)
    page = client.get("/sites/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_from(page)})
    wrong = post_form(client, "/login", {"email": "owner@example.com", "password": SAME_FIRST_72})
    assert wrong.status_code == 400
    assert "Email or password is incorrect." in wrong.get_data(as_text=True)


@pytest.mark.parametrize("password", ["y" * 73, "é" * 100, LONG_ASCII])
def test_log_in_with_a_long_password_for_an_unknown_email_is_a_form_error(client, password):
    response = post_form(client, "/login", {"email": "nobody@example.com", "password": password})
    assert response.status_code == 400
    assert "Email or password is incorrect." in response.get_data(as_text=True)


def test_hashes_of_short_passwords_are_plain_bcrypt():
    """Hashes stored before the pre-hash rule keep working: short passwords are unchanged."""
    import bcrypt

    legacy = bcrypt.hashpw(b"correct horse battery", bcrypt.gensalt()).decode()
    assert check_password("correct horse battery", legacy)
    assert hash_password(LONG_ASCII).startswith("$2")
    assert not check_password(SAME_FIRST_72, hash_password(LONG_ASCII))
