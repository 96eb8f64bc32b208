"""CLI commands on a database another writer holds locked: they wait the busy timeout, then
exit non-zero with one line on stderr, never a traceback."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from datalook.cli.common import BUSY, database_locked
from datalook.extensions import db
from datalook.models import ApiKey, Site
from tests.factories import make_key, make_site, make_user
from tests.live import FLASK, ROOT

BUSY_LINE = f"Error: {BUSY}\n"


@contextlib.contextmanager
def write_locked(database: Path):
    """Hold SQLite's write lock on `database` from a second connection (BEGIN IMMEDIATE)."""
    holder = sqlite3.connect(database, isolation_level=None, timeout=0)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield
    finally:
        holder.rollback()
        holder.close()


@pytest.fixture
def setup(quick_app):
    """An app waiting 200 ms for a locked database, with a user, a site and a key."""
    with quick_app.app_context():
        site = make_site(make_user("owner@locked.example.com"), "locked.example.com")
        key_id = make_key(site).key_id
        db.session.remove()
    return quick_app, key_id


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "set-limit", "{key_id}", "10 per second"],
        ["keys", "revoke", "{key_id}"],
        ["users", "create", "new@locked.example.com", "--password", "correct horse battery"],
        ["sites", "set", "locked.example.com", "--timezone", "Europe/Berlin"],
    ],
)
def test_a_write_on_a_locked_database_exits_with_one_line(setup, args):
    app, key_id = setup
    args = [arg.format(key_id=key_id) for arg in args]
    with write_locked(Path(app.instance_path) / "datalook.db"):
        started = time.monotonic()
        result = app.test_cli_runner().invoke(args=args)
        waited = time.monotonic() - started
    assert result.exit_code == 1
    assert result.stderr == BUSY_LINE
    assert "Traceback" not in result.output
    assert waited >= 0.15  # it waited for the writer, as the API does (200 ms here)
    with app.app_context():  # nothing was written
        key = db.session.scalar(db.select(ApiKey).where(ApiKey.key_id == key_id))
        assert key is not None and key.rate_limit is None and key.revoked_at is None
        site = db.session.scalar(db.select(Site).where(Site.domain == "locked.example.com"))
        assert site is not None and site.timezone != "Europe/Berlin"


def test_the_command_succeeds_once_the_lock_is_released(setup):
    app, key_id = setup
    runner = app.test_cli_runner()
    with write_locked(Path(app.instance_path) / "datalook.db"):
        assert runner.invoke(args=["keys", "set-limit", key_id, "10 per second"]).exit_code == 1
    result = runner.invoke(args=["keys", "set-limit", key_id, "10 per second"])
    assert result.exit_code == 0, result.output
    assert result.stderr == f"{key_id}: 10 per 1 second\n"


def test_the_flask_command_exits_with_one_line_and_no_traceback(setup):
    app, key_id = setup
    env = {
        **os.environ,
        "DATALOOK_INSTANCE_PATH": app.instance_path,
        "SQLITE_BUSY_TIMEOUT_MS": "200",
    }
    with write_locked(Path(app.instance_path) / "datalook.db"):
        result = subprocess.run(
            [*FLASK, "keys", "set-limit", key_id, "10 per second"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == BUSY_LINE
    assert result.stdout == ""


def test_other_database_errors_are_not_taken_for_a_lock():
    assert database_locked(sqlite3.OperationalError("database is locked"))
    assert database_locked(sqlite3.OperationalError("database table is locked"))
    assert not database_locked(sqlite3.OperationalError("no such table: api_keys"))
    assert not database_locked(sqlite3.OperationalError("disk I/O error"))
