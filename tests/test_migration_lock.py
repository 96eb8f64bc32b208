"""Any number of hosts may start at once: concurrent `flask db upgrade` runs are serialised."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text

from tests.conftest import skip_or_fail
from tests.live import ROOT

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
UPGRADERS = 6  # hosts restarting together in a rolling release


def head_revision() -> str:
    """The newest revision in migrations/."""
    script = ScriptDirectory(str(ROOT / "migrations"))
    return script.get_current_head()


def upgrade_together(env: dict[str, str], count: int) -> list[subprocess.CompletedProcess]:
    """Start `count` `flask db upgrade` processes at once; return them when all have ended."""
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def assert_all_succeeded(results: list[subprocess.CompletedProcess]) -> None:
    """Every upgrader exited 0."""
    failures = [r.stderr[-1500:] for r in results if r.returncode != 0]
    assert not failures, f"{len(failures)} of {len(results)} upgrades failed:\n{failures[0]}"


@pytest.fixture
def fresh_pg_url():
    """The URL of a fresh, empty, uniquely named PostgreSQL database, dropped afterwards."""
    name = f"datalook_migrate_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server here
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({type(exc).__name__})")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_concurrent_upgrades_on_a_fresh_postgresql_database(tmp_path, fresh_pg_url):
    env = {**os.environ, "DATALOOK_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": fresh_pg_url}
    assert_all_succeeded(upgrade_together(env, UPGRADERS))
    engine = create_engine(fresh_pg_url)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [row[0] for row in versions] == [head_revision()]
        assert connection.execute(text("SELECT count(*) FROM users")).scalar_one() == 0
    engine.dispose()


def test_concurrent_upgrades_on_a_fresh_sqlite_database(tmp_path):
    env = {**os.environ, "DATALOOK_INSTANCE_PATH": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    assert_all_succeeded(upgrade_together(env, UPGRADERS))
    engine = create_engine(f"sqlite:///{Path(tmp_path) / 'datalook.db'}")
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [row[0] for row in versions] == [head_revision()]
    engine.dispose()
