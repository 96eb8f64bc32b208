"""Reports and what is derived from events, across the live-view features: test keys'
events are never counted, and an erasure or a retention cut-off corrects the reports and
removes the derived rows (sessions) at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from datalook import erasure
from datalook.analytics import sessions
from datalook.analytics.funnels.models import VisitorSession
from datalook.extensions import db
from datalook.keys.apikeys import create_key
from datalook.models import Site
from tests.conftest import add_site, sign_up
from tests.factories import make_key
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

PAID = {"event_name": "success", "name": "paid-customer", "page_path": "/checkout/success"}


@pytest.fixture
def site(client, app):
    """A logged-in owner's site with a live and a test key: (site id, live, test headers)."""
    return _owned_site(client, app)


def _owned_site(client, app) -> tuple:
    """Sign up, add a site with a live and a test key: (site id, live, test headers)."""
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        owned = db.session.get(Site, site_id)
        live = make_key(owned, rate_limit="100000 per 10 seconds")
        test = create_key(owned, "Trying the snippets", None, kind="test")
    return (
        site_id,
        {"Authorization": f"Bearer {live.token}"},
        {"Authorization": f"Bearer {test.token}"},
    )


def _send(app, headers: dict, **event) -> None:
    """POST one event through the real API and require 204."""
    answer = app.test_client().post("/event", json={"page_path": "/", **event}, headers=headers)
    assert answer.status_code == 204, answer.get_data(as_text=True)


def _totals(client, site_id: int) -> dict:
    """Today's totals from stats.json (it folds pending events first)."""
    answer = client.get(f"/sites/{site_id}/stats.json?period=today")
    assert answer.status_code == 200
    return answer.get_json()["totals"]


def test_test_keys_events_are_stored_but_never_counted(app, client, site):
    site_id, live, test = site
    _send(app, test, **PAID, success_user_id="tester", success_value=9.99)
    _send(app, test, event_name="pageview", success_user_id="tester")
    _send(app, live, **PAID, success_user_id="alice", success_value=20)
    totals = _totals(client, site_id)
    assert (totals["events"], totals["conversions"], totals["revenue"]) == (1, 1, "20.00")
    assert totals["visitors"] == 1
    with app.app_context():
        sessions.catch_up(db.session())
        visitors = db.session.scalars(select(VisitorSession.visitor_id)).all()
    assert visitors == ["u:alice"]


def test_erasing_a_visitor_corrects_the_reports_and_the_sessions_at_once(app, client, site):
    site_id, live, _ = site
    _send(app, live, **PAID, success_user_id="alice", success_value=0.1)
    _send(app, live, **PAID, success_user_id="alice", success_value=0.2)
    _send(app, live, **PAID, success_user_id="bob", success_value=19.99)
    _send(app, live, event_name="pageview", success_user_id="alice")
    before = _totals(client, site_id)  # folded: the erasure must take them out again
    assert (before["events"], before["conversions"], before["revenue"]) == (4, 3, "20.29")
    with app.app_context():
        sessions.catch_up(db.session())
        erased = erasure.erase_visitor(db.session.get(Site, site_id), "alice", "test")
    assert erased == 3
    after = _totals(client, site_id)
    assert (after["events"], after["conversions"], after["revenue"]) == (1, 1, "19.99")
    assert after["visitors"] == 1
    with app.app_context():
        left = db.session.scalars(select(VisitorSession.visitor_id)).all()
    assert left == ["u:bob"]


def test_a_retention_cut_off_empties_the_reports_before_it(app, client, site):
    site_id, live, _ = site
    _send(app, live, **PAID, success_user_id="alice", success_value=5)
    assert _totals(client, site_id)["conversions"] == 1
    later = datetime.now(UTC).replace(tzinfo=None) + timedelta(hours=2)
    with app.app_context():
        sessions.catch_up(db.session())
        assert db.session.scalar(select(func.count()).select_from(VisitorSession)) == 1
        deleted = erasure.delete_before(db.session.get(Site, site_id), later, "test")
        remaining = db.session.scalar(select(func.count()).select_from(VisitorSession))
    assert deleted == 1
    assert remaining == 0
    after = _totals(client, site_id)
    assert (after["events"], after["conversions"], after["revenue"]) == (0, 0, "0.00")


def _stats(client, site_id: int, period: str) -> dict:
    """stats.json for a named period, with every pending event folded first (the report's
    own catch-up has a time budget, which a loaded machine can spend before it is done)."""
    from datalook.analytics.rollups import fold as summaries

    app = client.application
    with app.app_context():
        summaries.catch_up(db.engine, app.instance_path)
    answer = client.get(f"/sites/{site_id}/stats.json?period={period}")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()


def _ago(days: int, hours: int = 0) -> str:
    """An ISO timestamp `days` and `hours` before now (inside the API's 7 days back)."""
    moment = datetime.now(UTC) - timedelta(days=days, hours=hours)
    return moment.isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize("period", ["today", "7d", "30d"])
def test_erasing_a_visitor_takes_them_out_of_the_estimated_visitors(app, client, site, period):
    _erase_from_estimates(app, client, site, period)


def test_erasing_a_visitor_fixes_the_sketches_on_postgresql(pg_app):  # noqa: F811
    client = pg_app.test_client()
    site = _owned_site(client, pg_app)
    _erase_from_estimates(pg_app, client, site, "7d")
    _erase_matches_rebuild(pg_app, client, site, "bob")


def _erase_from_estimates(app, client, site, period: str) -> None:
    """Erase alice (events over a week): estimated visitors, converters, pages drop her."""
    site_id, live, _ = site
    app.config["ANALYTICS_EXACT_EVENTS"] = 0  # every range from the sketches
    for days, hours in [(0, 0), (0, 1), (3, 0), (6, 2)]:
        when = _ago(days, hours)
        _send(app, live, **PAID, success_user_id="alice", success_value=1, timestamp=when)
        _send(app, live, event_name="pageview", page_path="/a", success_user_id="alice")
    _send(app, live, **PAID, success_user_id="bob", success_value=2)
    _send(app, live, event_name="pageview", page_path="/a", success_user_id="carol")
    before = _stats(client, site_id, period)
    assert before["totals"]["visitors_exact"] is False
    assert before["totals"]["visitors"] == 3
    with app.app_context():
        erasure.erase_visitor(db.session.get(Site, site_id), "alice", "test")
    after = _stats(client, site_id, period)
    assert after["totals"]["visitors"] == 2
    rules = {rule["name"]: rule for rule in after["rules"]}
    assert rules["paid-customer"]["converters"] == 1
    pages = {page["page_path"]: page["visitors"] for page in after["pages"]}
    assert pages["/a"] == 1
    assert sum(point["visitors"] for point in after["series"]) >= 1
    assert all(point["visitors"] <= 2 for point in after["series"])


def test_a_retention_cut_off_empties_the_visitor_sketches_before_it(app, client, site):
    site_id, live, _ = site
    app.config["ANALYTICS_EXACT_EVENTS"] = 0
    _send(app, live, **PAID, success_user_id="alice", success_value=5, timestamp=_ago(3))
    _send(app, live, event_name="pageview", success_user_id="bob")
    assert _stats(client, site_id, "7d")["totals"]["visitors"] == 2
    with app.app_context():
        erasure.delete_before(
            db.session.get(Site, site_id),
            datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1),
            "test",
        )
    assert _stats(client, site_id, "7d")["totals"]["visitors"] == 1


def _sketch_estimates(site_id: int) -> dict:
    """Every stored visitor sketch of the site as its rounded estimate, by key."""
    from datalook.analytics import sketches
    from datalook.analytics.rollups.models import VisitorSketch

    rows = db.session.execute(
        select(VisitorSketch).where(VisitorSketch.site_id == site_id)
    ).scalars()
    return {
        (row.hours, row.dim, row.start): round(sketches.load(row.sketch).get_estimate())
        for row in rows
    }


def test_an_erasure_leaves_the_sketches_a_rebuild_would_make(app, client, site):
    _erase_matches_rebuild(app, client, site, "alice")


def _erase_matches_rebuild(app, client, site, erased_user: str) -> None:
    """After erasing one visitor the stored sketches equal those of a rebuild."""
    from datalook.analytics.rollups import fold as summaries

    site_id, live, _ = site
    users = ["alice", "bob", "carol", "dave"]
    for index in range(24):
        user = users[index % 4] if index % 5 else "alice"
        kind = PAID if index % 3 == 0 else {"event_name": "pageview"}
        path = f"/p{index % 3}"
        when = _ago(index % 7, index % 5)
        _send(app, live, **{**kind, "page_path": path}, success_user_id=user, timestamp=when)
    _stats(client, site_id, "today")  # folds
    with app.app_context():
        erasure.erase_visitor(db.session.get(Site, site_id), erased_user, "test")
        erased = _sketch_estimates(site_id)
        summaries.rebuild_site(db.engine, app.instance_path, site_id)
        db.session.commit()
        rebuilt = _sketch_estimates(site_id)
    assert erased == rebuilt


def test_settled_figures_follow_an_erasure_and_older_events_folded_later(app, client, site):
    """Figures of the settled past are cached per process; an erasure, a fold of older
    events and a rebuild must each show at once."""
    from tests.analytics_helpers import Sample, store

    site_id, _, _ = site
    app.config["ANALYTICS_EXACT_EVENTS"] = 0
    old = datetime.now(UTC).replace(tzinfo=None, minute=0) - timedelta(days=40)
    first, last = (old - timedelta(days=10)).date(), (old + timedelta(days=10)).date()
    url = f"/sites/{site_id}/stats.json?from={first}&to={last}"

    def figures() -> tuple:
        answer = client.get(url).get_json()
        day = [p for p in answer["series"] if p["start"] == old.date().isoformat()][0]
        return answer["totals"]["visitors"], answer["totals"]["events"], day["visitors"]

    with app.app_context():
        store(site_id, [Sample(old, user="alice"), Sample(old, user="bob")])
    assert figures() == (2, 2, 2)
    assert figures() == (2, 2, 2)  # now from the cache
    with app.app_context():
        store(site_id, [Sample(old + timedelta(hours=1), user="carol")])
    assert figures() == (3, 3, 3)  # the fold of older events moved the generation on
    with app.app_context():
        erasure.erase_visitor(db.session.get(Site, site_id), "alice", "test")
    assert figures() == (2, 2, 2)
    with app.app_context():
        from datalook.analytics.rollups import fold as summaries

        summaries.rebuild_site(db.engine, app.instance_path, site_id)
    assert figures() == (2, 2, 2)
