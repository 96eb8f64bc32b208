"""The funnel and journey correctness tests again, on PostgreSQL."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from datalook.analytics import sessions
from datalook.extensions import db
from tests import test_funnels_api as funnels_case
from tests import test_journeys as journeys_case
from tests.conftest import add_site, sign_up
from tests.funnel_data import set_timezone, store
from tests.test_postgres import pg_app  # noqa: F401 (the fixture)


@pytest.fixture
def pg_client(pg_app):  # noqa: F811
    """A logged-in owner on PostgreSQL."""
    client = pg_app.test_client()
    sign_up(client)
    return client


@pytest.fixture
def pg_site(pg_client, pg_app):  # noqa: F811
    """The owner's site, reporting in New York time."""
    site_id = add_site(pg_client)
    set_timezone(pg_app, site_id, "America/New_York")
    return site_id


def test_funnel_scenarios_on_postgresql(pg_app, pg_client, pg_site):  # noqa: F811
    # One site per scenario, so that each is counted on its own.
    for title, events, expected in funnels_case.SCENARIOS:
        site_id = add_site(pg_client, f"s{abs(hash(title)) % 10**8}.example.com")
        set_timezone(pg_app, site_id, "America/New_York")
        store(pg_app, site_id, events)
        unsaved = pg_client.get(funnels_case.funnel_url(site_id)).get_json()
        assert [s["visitors"] for s in unsaved["steps"]] == expected, title
        funnel_id = funnels_case.save_funnel(pg_client, site_id, "F", funnels_case.STEPS)
        saved = pg_client.get(
            f"/sites/{site_id}/funnels/{funnel_id}.json?{urlencode(funnels_case.RANGE)}"
        ).get_json()
        assert saved == unsaved, title


def test_funnel_fields_and_strict_mode_on_postgresql(pg_app, pg_client, pg_site):  # noqa: F811
    funnels_case.test_report_fields_excluded_events_and_revenue(pg_client, pg_app, pg_site)


def test_strict_prefix_and_property_on_postgresql(pg_app, pg_client):  # noqa: F811
    first, second = add_site(pg_client, "a.example.com"), add_site(pg_client, "b.example.com")
    for site_id in (first, second):
        set_timezone(pg_app, site_id, "America/New_York")
    funnels_case.test_strict_mode_over_the_database(pg_client, pg_app, first)
    funnels_case.test_prefix_and_property_steps(pg_client, pg_app, second)


def test_saved_funnel_catch_up_on_postgresql(pg_app, pg_client, pg_site):  # noqa: F811
    funnels_case.test_saved_funnel_catches_up_with_new_events(pg_client, pg_app, pg_site)


def test_sessions_and_journeys_on_postgresql(pg_app, pg_client):  # noqa: F811
    site_id = add_site(pg_client, "journeys.example.com")
    journeys_case.test_journeys_json(pg_client, pg_app, site_id)
    other = add_site(pg_client, "next.example.com")
    journeys_case.test_next_step_view(pg_client, pg_app, other)


def test_incremental_sessions_on_postgresql(pg_app, pg_client):  # noqa: F811
    site_id = add_site(pg_client, "late.example.com")
    journeys_case.test_incremental_sessions_equal_a_rebuild_with_growing_sessions_and_late_events(
        pg_app, site_id
    )
    with pg_app.app_context():
        assert sessions.catch_up(db.session) == 0


def test_a_young_id_gap_is_waited_for_on_postgresql(pg_app, pg_client):  # noqa: F811
    from datetime import datetime, timedelta

    from sqlalchemy import func, insert, select

    from datalook.analytics.funnels.models import DerivedCursor
    from datalook.models import Event, utcnow

    site_id = add_site(pg_client, "gap.example.com")
    at = datetime(2026, 3, 10, 12, 0)

    def row(event_id: int, received: datetime) -> dict:
        """An event row with an explicit id."""
        return {
            "id": event_id,
            "site_id": site_id,
            "event_name": "pageview",
            "page_path": "/",
            "visitor_id": "u:1",
            "occurred_at": at + timedelta(seconds=event_id),
            "received_at": received,
        }

    with pg_app.app_context():
        base = (db.session.scalar(select(func.max(Event.id))) or 0) + 1000
        db.session.execute(insert(Event), [row(base, utcnow() - timedelta(minutes=1))])
        db.session.commit()
        sessions.catch_up(db.session)  # an old gap before it: skipped
        # id base+1 is "in flight" (its transaction has not committed): base+2 is young.
        db.session.execute(insert(Event), [row(base + 2, utcnow())])
        db.session.commit()
        sessions.catch_up(db.session)
        position = db.session.scalar(
            select(DerivedCursor.last_event_id).where(DerivedCursor.name == sessions.CURSOR)
        )
        assert position == base
        db.session.execute(insert(Event), [row(base + 1, utcnow())])  # it commits late
        db.session.commit()
        sessions.catch_up(db.session)
        (stored,) = db.session.execute(select(sessions.VisitorSession.events)).scalars().all()
        assert stored == 3
