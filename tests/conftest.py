"""Shared fixtures: an app on a migrated SQLite database, a logged-in client, a live server."""

from __future__ import annotations

import functools
import os
import re
import shutil
from pathlib import Path

import bcrypt
import pytest
from flask_migrate import upgrade

from datalook.app import create_app
from datalook.extensions import db
from tests.live import LiveServer

REQUIRE_ALL = os.environ.get("DATALOOK_REQUIRE_ALL") == "1"
# bcrypt's lowest cost (4) for the hashes this test process makes: thousands of sign-ups and
# log-ins would each spend about 0.25 s of CPU at the default cost of 12, and a cost changes
# no outcome (a hash of any cost checks the same passwords). Servers the tests start in their
# own processes keep the default cost.
TEST_BCRYPT_ROUNDS = 4


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashes():
    """Hash passwords at bcrypt's lowest cost in this process for the whole session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bcrypt, "gensalt", functools.partial(bcrypt.gensalt, TEST_BCRYPT_ROUNDS))
        yield


def skip_or_fail(reason: str) -> None:
    """Skip a test whose toolchain is missing, or fail when CI requires every test to run."""
    if REQUIRE_ALL:
        pytest.fail(f"DATALOOK_REQUIRE_ALL=1 and {reason}")
    pytest.skip(reason)


def _make_app(instance: Path, **overrides):
    """Create an app whose instance folder (database, secret, rate-limit file) is `instance`."""
    os.environ["DATALOOK_INSTANCE_PATH"] = str(instance)
    try:
        config = {"TESTING": True, **overrides}
        return create_app(config)
    finally:
        del os.environ["DATALOOK_INSTANCE_PATH"]


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory) -> Path:
    """A database file created by the migrations (the only way the schema is made)."""
    instance = tmp_path_factory.mktemp("template")
    app = _make_app(instance)
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return instance / "datalook.db"


@pytest.fixture
def make_app(tmp_path, migrated_db):
    """Build fresh apps, each on its own copy of the migrated database, with overrides."""
    made = []

    def factory(**overrides):
        instance = tmp_path / f"instance{len(made) or ''}"
        instance.mkdir()
        shutil.copy(migrated_db, instance / "datalook.db")
        made.append(_make_app(instance, **overrides))
        return made[-1]

    yield factory
    for application in made:
        with application.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    """A fresh app on its own copy of the migrated database."""
    return make_app()


@pytest.fixture
def quick_app(make_app):
    """An app whose SQLite busy timeout is 200 ms, for the locked-database tests."""
    return make_app(SQLITE_BUSY_TIMEOUT_MS=200)


@pytest.fixture
def client(app):
    """A test client (CSRF protection stays on, as in production)."""
    return app.test_client()


def csrf_from(html: str) -> str:
    """Extract the CSRF token from a rendered form."""
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token in the page"
    return match.group(1)


def post_form(client, url: str, data: dict, form_url: str | None = None):
    """GET the form page for its CSRF token, then POST the form like a browser."""
    page = client.get(form_url or url)
    return client.post(url, data={**data, "csrf_token": csrf_from(page.get_data(as_text=True))})


def sign_up(client, email: str = "owner@example.com", password: str = "correct horse battery"):
    """Create an account through the sign-up form (and stay logged in)."""
    response = post_form(client, "/signup", {"email": email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return response


def add_site(client, domain: str = "example.com") -> int:
    """Add a site through the form and return its id."""
    response = post_form(client, "/sites/", {"domain": domain})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return int(re.search(r"/sites/(\d+)/", response.headers["Location"]).group(1))


@pytest.fixture
def owner(client):
    """A logged-in owner with one site; returns the site id."""
    sign_up(client)
    return add_site(client)


@pytest.fixture
def live_server(tmp_path):
    """The real server, started as `make run` starts it, on a free port."""
    server = LiveServer(tmp_path / "live-instance", workers=2)
    server.start()
    yield server
    server.stop()
