"""The same code on PostgreSQL: migrations, keys, ingestion, dedup, stats, export."""

from __future__ import annotations

import uuid

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, text

from datalook.extensions import db
from datalook.keys import apikeys
from datalook.models import Site, User
from tests import raw_figures as stats
from tests.conftest import _make_app, skip_or_fail

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def pg_app(tmp_path):
    """An app on a fresh, uniquely named PostgreSQL database, dropped afterwards."""
    name = f"datalook_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # no server here
        skip_or_fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable ({type(exc).__name__})")
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    app = _make_app(tmp_path, SQLALCHEMY_DATABASE_URI=url)
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _site_with_key(app, name: str) -> tuple[int, apikeys.CreatedKey]:
    """A user, their site `name`.example.com and a key on it: (site id, the created key)."""
    with app.app_context():
        user = User(email=f"{name}@example.com")
        user.set_password("correct horse battery")
        site = Site(owner=user, domain=f"{name}.example.com")
        db.session.add_all([user, site])
        db.session.commit()
        return site.id, apikeys.create_key(site, "Prod", user)


def test_ingestion_on_postgresql(pg_app):
    site_id, created = _site_with_key(pg_app, "pg")
    token = created.token

    client = pg_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    event = {
        "event_name": "success",
        "name": "paid-customer",
        "page_path": "/checkout/success?coupon=x",
        "success_value": 9.99,
        "success_user_id": "user_42",
        "properties": {"plan": "starter", "email": "a@b.c"},
    }
    for _ in range(3):
        assert client.post("/event", json=event, headers=headers).status_code == 204
    first = client.post("/event", json={**event, "event_id": "order-1"}, headers=headers)
    again = client.post("/event", json={**event, "event_id": "order-1"}, headers=headers)
    assert first.status_code == again.status_code == 204
    assert again.headers["DataLook-Duplicate"] == "true"
    batch = client.post(
        "/events",
        json={"events": [{**event, "event_id": "b1"}, {**event, "event_id": "b1"}, {"bad": 1}]},
        headers=headers,
    )
    assert batch.get_json()["accepted"] == 1 and batch.get_json()["duplicates"] == 1
    # A batch of well-formed events only (decoded in one pass), with and without ids.
    whole = client.post(
        "/events",
        json={"events": [event, {**event, "event_id": "order-1"}, {**event, "event_id": "b2"}]},
        headers=headers,
    ).get_json()
    assert (whole["accepted"], whole["duplicates"], whole["errors"]) == (2, 1, [])
    assert whole["stripped_keys"] == [{"index": i, "keys": ["email"]} for i in range(3)]

    with pg_app.app_context():
        figures = stats.overview(site_id)
        assert figures.conversions == 7
        assert figures.visitors == 1
        assert figures.revenue == pytest.approx(69.93) and str(figures.revenue) == "69.93"
        assert [rule.name for rule in stats.success_rules(site_id)] == ["paid-customer"]
    runner = pg_app.test_cli_runner()
    lines = runner.invoke(args=["events", "export", "--site", "pg.example.com"]).stdout.splitlines()
    assert len(lines) == 7
    assert '"page_path": "/checkout/success"' in lines[0] and "a@b.c" not in lines[0]


def test_revocation_on_postgresql(pg_app):
    _, created = _site_with_key(pg_app, "pg2")
    token, key = created.token, created.key
    client = pg_app.test_client()
    body = {"event_name": "click", "page_path": "/"}
    assert (
        client.post("/event", json=body, headers={"Authorization": f"Bearer {token}"}).status_code
        == 204
    )
    with pg_app.app_context():
        apikeys.revoke_key(db.session.merge(key))
    refused = client.post("/event", json=body, headers={"Authorization": f"Bearer {token}"})
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "revoked_token"


def test_held_connection_is_left_clean_on_postgresql(pg_app):
    """The ingestion API holds its connection between requests: never inside a transaction."""
    token = _site_with_key(pg_app, "pg3")[1].token
    client = pg_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    answers = [
        client.post("/event", json={"event_name": "click", "page_path": "/"}, headers=headers),
        client.post("/event", json={"event_name": "nope"}, headers=headers),  # 400 after auth
        client.post("/event", data="{", headers={**headers, "Content-Type": "application/json"}),
    ]
    assert [answer.status_code for answer in answers] == [204, 400, 400]
    with pg_app.app_context():
        name = db.engine.url.database
    admin = create_engine(ADMIN_URL)
    with admin.connect() as connection:
        states = (
            connection.execute(
                text(
                    "SELECT state FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            .scalars()
            .all()
        )
    admin.dispose()
    assert states and "idle in transaction" not in states


def test_event_id_index_is_partial_on_postgresql(pg_app):
    with pg_app.app_context(), db.engine.connect() as connection:
        definition = connection.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = 'uq_events_site_event_id'")
        ).scalar_one()
    assert "UNIQUE" in definition and "WHERE (event_id IS NOT NULL)" in definition
