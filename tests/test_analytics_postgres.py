"""The analytics core on PostgreSQL: the same figures, folds, gaps, seed (COPY) and rebuild."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from datalook.analytics.rollups import fold as summaries
from datalook.extensions import db
from datalook.models import Site
from tests.analytics_helpers import Sample, expected, random_samples, store
from tests.conftest import add_site, sign_up
from tests.test_analytics_reports import _check, _samples
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

CASES = [
    ("UTC", date(2026, 10, 1), date(2026, 10, 30)),
    ("Europe/Berlin", date(2026, 10, 25), date(2026, 10, 25)),
    ("Asia/Kolkata", date(2026, 5, 10), date(2026, 5, 12)),
    ("America/New_York", date(2026, 1, 1), date(2026, 6, 30)),
]


def _owner_site(app, zone_name: str) -> tuple:
    """A logged-in client and its site in `zone_name`."""
    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        db.session.get(Site, site_id).timezone = zone_name
        db.session.commit()
    return client, site_id


@pytest.mark.parametrize(("zone_name", "first", "last"), CASES)
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "sketches"])
def test_stats_on_postgresql(pg_app, zone_name, first, last, exact):  # noqa: F811
    pg_app.config["ANALYTICS_EXACT_EVENTS"] = 10**9 if exact else 0
    client, site_id = _owner_site(pg_app, zone_name)
    samples = _samples(zone_name, first, last, seed=11)
    with pg_app.app_context():
        store(site_id, samples)
    answer = client.get(f"/sites/{site_id}/stats.json?from={first}&to={last}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    _check(answer.get_json(), expected(samples, ZoneInfo(zone_name), first, last), exact)


def test_events_through_the_api_and_a_rebuild_on_postgresql(pg_app):  # noqa: F811
    client, site_id = _owner_site(pg_app, "UTC")
    from tests.factories import make_key

    with pg_app.app_context():
        token = make_key(db.session.get(Site, site_id), rate_limit="100000 per 10 seconds").token
    ingest = pg_app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    event = {"event_name": "success", "name": "paid", "page_path": "/", "success_value": 0.1}
    for user, event_id in [("a", "o1"), ("a", "o1"), ("b", "o2"), (None, None)]:
        body = {**event, **({"success_user_id": user} if user else {})}
        body.update({"event_id": event_id} if event_id else {})
        assert ingest.post("/event", json=body, headers=headers).status_code == 204
    totals = client.get(f"/sites/{site_id}/stats.json?period=today").get_json()["totals"]
    assert (totals["conversions"], totals["visitors"], totals["revenue"]) == (3, 2, "0.30")
    with pg_app.app_context():
        rng = random.Random(3)
        start = datetime(2026, 9, 1)
        store(site_id, random_samples(rng, start, start + timedelta(days=3), 200))
        summaries.rebuild_site(db.engine, pg_app.instance_path, site_id)
        assert summaries.pending(db.engine) == 200  # rebuilt up to the cursor only
    again = client.get(f"/sites/{site_id}/stats.json?period=today").get_json()["totals"]
    assert again == totals


def test_demo_seed_uses_copy_on_postgresql(pg_app):  # noqa: F811
    client, site_id = _owner_site(pg_app, "UTC")
    with pg_app.app_context():
        domain = db.session.get(Site, site_id).domain
    result = pg_app.test_cli_runner().invoke(
        args=["demo", "seed", "--site", domain, "--events", "5000", "--days", "3"]
    )
    assert result.exit_code == 0, result.output
    body = client.get(f"/sites/{site_id}/stats.json?period=7d").get_json()
    assert body["totals"]["events"] == 5000


def test_a_fold_waits_for_an_uncommitted_id_on_postgresql(pg_app):  # noqa: F811
    _client, site_id = _owner_site(pg_app, "UTC")
    with pg_app.app_context():
        engine = db.engine
        summaries.catch_up(engine, pg_app.instance_path)
        holding = engine.connect()
        holding.begin()  # takes an id and does not commit yet
        holding.execute(
            db.text(
                "INSERT INTO events (site_id, event_name, page_path, visitor_id, occurred_at,"
                " received_at) VALUES (:s, 'click', '/', 'u:x', now(), now())"
            ),
            {"s": site_id},
        )
        store(site_id, [Sample(datetime(2026, 6, 1), "pageview", "later")])
        assert summaries.catch_up(engine, pg_app.instance_path) == 0  # the gap is young
        holding.commit()
        holding.close()
        assert summaries.catch_up(engine, pg_app.instance_path) == 2
