"""Password guessing: a limit per account across addresses, and per address on sign-up."""

from __future__ import annotations

import pytest

from datalook.accounts.login_guard import ACCOUNT_FAILURE_LIMIT, DEVICE_COOKIE
from datalook.extensions import db, limiter
from tests.conftest import csrf_from, sign_up
from tests.factories import make_user

PASSWORD = "correct horse battery"
PROBER = {"REMOTE_ADDR": "203.0.113.5"}


class Clock:
    """A clock for the rate-limit storage that a test can move forward."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.00001  # like a real clock, never the same microsecond twice
        return self.now


def attempt(app, address: str, email: str, password: str, cookies: bool = False):
    """One log-in from a fresh browser at `address` (or `cookies`: the owner's client)."""
    client = app.test_client()
    form = client.get("/login", environ_base={"REMOTE_ADDR": address})
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": csrf_from(form.text)},
        environ_base={"REMOTE_ADDR": address},
    )


@pytest.fixture
def owner_app(app):
    """An app with the account owner@example.com."""
    sign_up(app.test_client())
    return app


def test_guesses_from_many_addresses_stop_at_the_account_limit(owner_app):
    limit = ACCOUNT_FAILURE_LIMIT.amount
    statuses = [
        attempt(
            owner_app, f"10.0.{n % 30}.{n}", "owner@example.com", f"guess number {n}"
        ).status_code
        for n in range(limit + 5)
    ]
    # Every address stays far under its own 10 per minute; the account's count still holds.
    assert statuses[:limit] == [400] * limit
    assert statuses[limit:] == [429] * 5
    refused = attempt(owner_app, "10.9.9.9", "owner@example.com", PASSWORD)
    assert refused.status_code == 429  # even the right password, from an unknown browser
    assert "Too many failed log-ins for this email address" in refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= ACCOUNT_FAILURE_LIMIT.get_expiry()


def test_the_owner_on_a_known_browser_is_not_locked_out(owner_app):
    owner = owner_app.test_client()
    first = attempt_with(owner, "192.0.2.1", PASSWORD)
    assert first.status_code == 302
    assert DEVICE_COOKIE in first.headers["Set-Cookie"]
    page = owner.get("/sites/").text
    owner.post("/logout", data={"csrf_token": csrf_from(page)})
    for n in range(ACCOUNT_FAILURE_LIMIT.amount + 2):
        attempt(owner_app, f"10.1.0.{n}", "owner@example.com", f"attacker guess {n}")
    assert attempt(owner_app, "10.9.9.9", "owner@example.com", PASSWORD).status_code == 429
    assert attempt_with(owner, "192.0.2.1", PASSWORD).status_code == 302


def attempt_with(client, address: str, password: str):
    """One log-in from an existing browser (its cookies kept)."""
    form = client.get("/login", environ_base={"REMOTE_ADDR": address})
    return client.post(
        "/login",
        data={
            "email": "owner@example.com",
            "password": password,
            "csrf_token": csrf_from(form.text),
        },
        environ_base={"REMOTE_ADDR": address},
    )


def test_the_browser_that_signed_up_is_a_known_device(app):
    owner = app.test_client()
    signed_up = sign_up(owner)
    assert any(DEVICE_COOKIE in value for value in signed_up.headers.getlist("Set-Cookie"))
    owner.post("/logout", data={"csrf_token": csrf_from(owner.get("/sites/").text)})
    for n in range(ACCOUNT_FAILURE_LIMIT.amount + 1):
        attempt(app, f"10.5.0.{n}", "owner@example.com", f"attacker guess {n}")
    assert attempt_with(owner, "192.0.2.9", PASSWORD).status_code == 302


def test_a_forged_device_cookie_does_not_lift_the_limit(owner_app):
    for n in range(ACCOUNT_FAILURE_LIMIT.amount):
        attempt(owner_app, f"10.2.0.{n}", "owner@example.com", f"attacker guess {n}")
    client = owner_app.test_client()
    client.set_cookie(DEVICE_COOKIE, "WzFd.forged.signature", path="/login")
    assert attempt_with(client, "10.9.9.8", PASSWORD).status_code == 429


def test_the_account_limit_is_a_short_delay(owner_app):
    with owner_app.app_context():
        clock = Clock(limiter.storage.clock())
        limiter.storage.clock = clock
    for n in range(ACCOUNT_FAILURE_LIMIT.amount):
        attempt(owner_app, f"10.3.0.{n}", "owner@example.com", f"attacker guess {n}")
    assert attempt(owner_app, "10.9.9.7", "owner@example.com", PASSWORD).status_code == 429
    clock.now += ACCOUNT_FAILURE_LIMIT.get_expiry() + 1
    assert attempt(owner_app, "10.9.9.7", "owner@example.com", PASSWORD).status_code == 302


def test_unknown_emails_are_limited_like_known_ones(app):
    """The limit must not tell which accounts exist."""
    statuses = [
        attempt(app, f"10.4.0.{n}", "nobody@example.com", f"guess number {n}").status_code
        for n in range(ACCOUNT_FAILURE_LIMIT.amount + 1)
    ]
    assert statuses[-1] == 429


def test_probing_sign_up_for_taken_emails_is_held_to_the_hourly_limit(app):
    """Sign-up says when an email is taken (documented); an address can ask 30 times an hour."""
    owner_app = app
    with owner_app.app_context():
        db.session.add(make_user("owner@example.com"))
        db.session.commit()
        clock = Clock(limiter.storage.clock())
        limiter.storage.clock = clock
    client = owner_app.test_client()
    token = csrf_from(client.get("/signup").text)
    probe = {"email": "", "password": "", "csrf_token": token}
    statuses: list[int] = []
    for _minute in range(4):
        statuses += [
            client.post("/signup", data=probe, environ_base=PROBER).status_code for _ in range(10)
        ]
        clock.now += 61
    assert statuses[:30] == [400] * 30
    assert statuses[30:] == [429] * 10
    refused = client.post("/signup", data=probe, environ_base=PROBER)
    assert "Too many sign-up attempts" in refused.text
    taken = client.post(
        "/signup",
        data={"email": "owner@example.com", "password": PASSWORD, "csrf_token": token},
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert taken.status_code == 400
    assert "already exists" in taken.text
