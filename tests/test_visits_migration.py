"""Migration 0022 gives the sessions stored before it their browser page views and duration
from the events, as the derivation would."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask_migrate import downgrade, upgrade
from sqlalchemy import insert, select

from datalook.analytics import sessions
from datalook.analytics.funnels.models import VisitorSession
from datalook.extensions import db
from datalook.models import Event
from tests.conftest import add_site, sign_up


def _figures() -> list[tuple]:
    """Every stored session's visitor, start, browser page views and duration."""
    t = VisitorSession
    return sorted(
        db.session.execute(
            select(t.visitor_id, t.started_at, t.browser_pageviews, t.duration_us)
        ).all()
    )


def test_the_migration_fills_the_stored_sessions(client, app):
    sign_up(client)
    site_id = add_site(client)
    start = datetime(2026, 5, 1, 9)
    sent = [
        ("u:a", 0, "pageview", True),
        ("u:a", 5, "pageview", True),
        ("u:a", 7.5, "success", False),
        ("u:a", 90, "pageview", False),  # a server's page view: a session, no visit
        ("u:b", 3, "pageview", True),
        ("u:b", 4, "pageview", True),
    ]
    with app.app_context():
        db.session.execute(
            insert(Event),
            [
                {
                    "site_id": site_id,
                    "event_name": kind,
                    "page_path": "/",
                    "visitor_id": visitor,
                    "occurred_at": start + timedelta(minutes=minutes),
                    "received_at": start,
                    "from_browser": browser,
                }
                for visitor, minutes, kind, browser in sent
            ],
        )
        db.session.commit()
        sessions.catch_up(db.session)
        derived = _figures()
        assert [(v, n, d) for v, _, n, d in derived] == [
            ("u:a", 2, 450_000_000),
            ("u:a", 0, 0),
            ("u:b", 2, 60_000_000),
        ]
        db.session.remove()
        downgrade(revision="0018")
        upgrade()
        assert _figures() == derived
