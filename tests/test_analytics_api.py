"""stats.json, CSV, settings and rule pages, through the real event API and the forms."""

from __future__ import annotations

import csv
import io
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest

from datalook.analytics import worker
from datalook.analytics.rollups import accumulate
from datalook.analytics.rollups import fold as summaries
from datalook.extensions import db
from datalook.models import Site
from tests.analytics_helpers import Sample, store
from tests.conftest import add_site, csrf_from, post_form, sign_up
from tests.factories import make_key


def _now() -> datetime:
    """Naive UTC now (the storage convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.fixture
def site(client, app):
    """A logged-in owner's site with an API key: (site id, ingestion client, headers)."""
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        made = make_key(db.session.get(Site, site_id), rate_limit="100000 per 10 seconds")
    return site_id, app.test_client(), {"Authorization": f"Bearer {made.token}"}


def _send(ingest, headers, **event) -> None:
    """POST one event and require 204."""
    answer = ingest.post("/event", json={"page_path": "/", **event}, headers=headers)
    assert answer.status_code == 204, answer.get_data(as_text=True)


def _today(client, site_id: int) -> dict:
    """stats.json for today (UTC site)."""
    answer = client.get(f"/sites/{site_id}/stats.json?period=today")
    assert answer.status_code == 200
    return answer.get_json()


def test_events_sent_through_the_api_are_counted_by_the_rules(client, site):
    site_id, ingest, headers = site
    paid = {"event_name": "success", "name": "paid-customer", "page_path": "/checkout/success"}
    _send(ingest, headers, **paid, success_user_id="alice", success_value=0.1, event_id="o-1")
    _send(ingest, headers, **paid, success_user_id="alice", success_value=0.1, event_id="o-1")
    _send(ingest, headers, **paid, success_user_id="alice", success_value=0.2, event_id="o-2")
    _send(ingest, headers, **paid, success_user_id="bob", success_value=19.99)
    _send(ingest, headers, **paid, success_value=5)  # no user: counted, not a visitor
    _send(ingest, headers, event_name="pageview", success_user_id="carol")
    _send(ingest, headers, event_name="click")
    body = _today(client, site_id)
    assert body["totals"] == {
        "events": 6,  # the retried o-1 counts once
        "pageviews": 1,
        "clicks": 1,
        "custom": 0,
        "conversions": 4,
        "visitors": 3,  # alice, bob, carol
        "visitors_exact": True,
        "revenue": "25.29",
        "events_without_visitor": 2,
        # A server's page view makes no visit: only a browser's does.
        "visits": 0,
        "views_per_visit": 0.0,
        "bounce_rate": 0.0,
        "visit_duration_s": 0.0,
    }
    (rule,) = body["rules"]
    assert rule == {
        "name": "paid-customer",
        "conversions": 4,
        "converters": 2,
        "conversion_rate": round(2 / 3, 6),
        "revenue": "25.29",
    }
    pages = {p["page_path"]: (p["events"], p["visitors"]) for p in body["pages"]}
    assert pages == {"/checkout/success": (4, 2), "/": (2, 1)}


def test_new_events_show_on_the_next_read(client, site):
    site_id, ingest, headers = site
    _send(ingest, headers, event_name="pageview", success_user_id="u1")
    assert _today(client, site_id)["totals"]["events"] == 1
    _send(ingest, headers, event_name="pageview", success_user_id="u2")
    assert _today(client, site_id)["totals"]["visitors"] == 2


def test_a_late_event_counts_on_its_own_day(client, site):
    site_id, ingest, headers = site
    late = (_now() - timedelta(days=3)).replace(microsecond=0)
    _send(ingest, headers, event_name="custom", timestamp=late.isoformat() + "Z")
    day = late.date().isoformat()
    body = client.get(f"/sites/{site_id}/stats.json?from={day}&to={day}").get_json()
    assert body["totals"]["custom"] == 1
    assert _today(client, site_id)["totals"]["events"] == 0


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ("from=2026-13-01&to=2026-12-31", "from", "invalid_date"),
        ("from=yesterday&to=2026-01-01", "from", "invalid_date"),
        ("from=2026-01-01", "to", "missing"),
        ("to=2026-01-01", "from", "missing"),
        ("from=2026-02-01&to=2026-01-01", "to", "before_from"),
        ("from=1999-12-31&to=2000-01-02", "from", "out_of_range"),
        ("from=2026-01-01&to=2026-01-02&period=7d", "period", "conflicting_parameters"),
        ("period=fortnight", "period", "unknown_period"),
        ("from=2000-01-01&to=2025-01-01", "to", "range_too_long"),
        ("from=2026-1-1&to=2026-01-02", "from", "invalid_date"),
    ],
)
def test_bad_parameters_answer_400_naming_them(client, site, query, field, code):
    site_id = site[0]
    answer = client.get(f"/sites/{site_id}/stats.json?{query}")
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "invalid_request"
    assert error["errors"] == [{"field": field, "code": code, "message": error["message"]}]


@pytest.mark.parametrize(
    "path",
    [
        "/sites/{id}/stats.json",
        "/sites/{id}/",
        "/sites/{id}/reports/totals.csv",
        "/sites/{id}/settings",
        "/sites/{id}/rules/edit?name=paid",
    ],
)
def test_another_users_site_is_not_found(make_app, path):
    app = make_app()
    owner, stranger = app.test_client(), app.test_client()
    sign_up(owner, "owner@example.com")
    site_id = add_site(owner)
    sign_up(stranger, "stranger@example.com")
    assert stranger.get(path.format(id=site_id)).status_code == 404
    assert stranger.get(path.format(id=site_id + 1000)).status_code == 404


def test_the_dashboard_shows_the_figures_and_states_the_rules(client, site):
    site_id, ingest, headers = site
    paid = {"event_name": "success", "name": "paid-customer"}
    _send(ingest, headers, **paid, success_user_id="alice", success_value=12.5)
    _send(ingest, headers, event_name="pageview", properties={"plan": "pro"})
    page = client.get(f"/sites/{site_id}/?period=today").get_data(as_text=True)
    figure = lambda key: re.search(rf'data-figure="{key}">([^<]*)<', page).group(1)  # noqa: E731
    assert figure("conversions") == "1"
    assert figure("visitors") == "1"
    assert figure("revenue") == "$12.50"
    assert figure("events") == "2"
    assert "50.0% of events have no visitor id" in page
    assert "How we count" in page and 'tabindex="0"' in page
    assert "analytics.css" in page and "<svg" in page and '<title id="chart-title">' in page


def test_a_malformed_range_on_the_page_falls_back_with_a_message(client, site):
    answer = client.get(f"/sites/{site[0]}/?from=nope&to=2026-01-01", follow_redirects=True)
    assert answer.status_code == 200
    assert "from: from must be a date YYYY-MM-DD" in answer.get_data(as_text=True)


def test_every_report_downloads_as_csv(client, site):
    site_id, ingest, headers = site
    _send(
        ingest, headers, event_name="success", name="=cmd", success_value=1, properties={"k": "v"}
    )
    for report in ("totals", "rules", "series", "pages", "breakdown"):
        answer = client.get(f"/sites/{site_id}/reports/{report}.csv?period=today&key=k")
        assert answer.status_code == 200 and answer.mimetype == "text/csv"
        assert "attachment" in answer.headers["Content-Disposition"]
        rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
        assert len(rows) >= 2, report
    rules = client.get(f"/sites/{site_id}/reports/rules.csv?period=today").get_data(as_text=True)
    assert "'=cmd" in rules  # a spreadsheet must not run it as a formula
    totals = client.get(f"/sites/{site_id}/reports/totals.csv?period=today").get_data(as_text=True)
    assert totals.splitlines()[1].split(",")[3] == "1"
    assert client.get(f"/sites/{site_id}/reports/nope.csv").status_code == 404


def test_settings_change_the_zone_and_currency(client, site, app):
    site_id = site[0]
    url = f"/sites/{site_id}/settings"
    bad = post_form(client, url, {"timezone": "Mars/Olympus", "currency": "EURO"})
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert "IANA time zone" in text and "ISO 4217" in text
    refused = client.post(url, data={"timezone": "Europe/Berlin", "currency": "EUR"})
    assert refused.status_code == 400  # no CSRF token
    good = post_form(client, url, {"timezone": "Europe/Berlin", "currency": "eur"})
    assert good.status_code == 302
    with app.app_context():
        saved = db.session.get(Site, site_id)
        assert (saved.timezone, saved.currency) == ("Europe/Berlin", "EUR")
    body = client.get(f"/sites/{site_id}/stats.json").get_json()
    assert (body["timezone"], body["currency"]) == ("Europe/Berlin", "EUR")


def test_a_rule_is_renamed_and_archived_for_display_only(client, site):
    site_id, ingest, headers = site
    _send(ingest, headers, event_name="success", name="paid", success_value=3)
    url = f"/sites/{site_id}/rules/edit?name=paid"
    page = client.get(url)
    assert page.status_code == 200
    token = csrf_from(page.get_data(as_text=True))
    saved = client.post(url, data={"csrf_token": token, "name": "paid", "label": "Paying"})
    assert saved.status_code == 302
    dashboard = client.get(f"/sites/{site_id}/?period=today").get_data(as_text=True)
    assert "Paying" in dashboard
    client.post(url, data={"csrf_token": token, "name": "paid", "label": "", "archived": "y"})
    dashboard = client.get(f"/sites/{site_id}/?period=today").get_data(as_text=True)
    goals = re.search(r'data-panel="goals".*?</section>', dashboard, re.S).group(0)
    assert 'data-value="paid"' not in goals and "1 archived" in goals
    # The Goals panel's Details lists every rule, the archived one too, to rename or restore.
    details = client.get(f"/sites/{site_id}/breakdown?period=today&dimension=rule")
    shown = details.get_data(as_text=True)
    assert 'data-value="paid"' in shown and "Rename or archive" in shown
    (rule,) = _today(client, site_id)["rules"]  # the JSON keeps the rule and its events
    assert (rule["name"], rule["conversions"]) == ("paid", 1)
    assert client.get(f"/sites/{site_id}/rules/edit?name=unknown").status_code == 404


def test_concurrent_folds_count_each_event_once(app, owner):
    with app.app_context():
        start = datetime(2026, 6, 1)
        store(
            owner,
            [Sample(start + timedelta(seconds=i), "pageview", f"u{i % 7}") for i in range(900)],
        )
        engine, instance = db.engine, app.instance_path

        def fold():
            summaries.catch_up(engine, instance, batch=50)

        threads = [threading.Thread(target=fold) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert summaries.pending(engine) == 0
        total = db.session.execute(
            db.text("SELECT SUM(events) FROM analytics_hourly WHERE site_id = :s"), {"s": owner}
        ).scalar()
        assert total == 900


def test_a_fold_with_a_stale_cursor_writes_nothing(app, owner):
    with app.app_context():
        store(owner, [Sample(datetime(2026, 6, 1), "pageview", "u")])
        engine = db.engine
        with engine.begin() as connection:
            seen = summaries.position(connection)
        assert summaries.fold_once(engine) == 1
        with engine.begin() as connection:  # a second writer that read the old version
            assert summaries.claim(connection, seen, seen.last_event_id + 1) is False


def fold_row(event_id: int, received_at: datetime) -> tuple:
    """A fold row: its id, and its received_at where the fold's columns put it."""
    values: list = [event_id] + [None] * (len(accumulate.EVENT_COLUMNS) - 1)
    values[accumulate.RECEIVED_AT] = received_at
    return tuple(values)


@pytest.mark.parametrize(
    ("ids", "ages", "ordered", "taken"),
    [
        ([11, 12, 13], [60, 60, 60], False, 3),
        ([11, 13, 14], [60, 1, 1], False, 1),  # 12 may still commit: wait
        ([11, 13, 14], [60, 30, 30], False, 3),  # 12 is old: rolled back, step over it
        ([12, 13], [1, 1], False, 0),  # the gap is right after the cursor
        ([11, 13, 14], [60, 1, 1], True, 3),  # SQLite: ids are visible in order
    ],
)
def test_a_young_gap_in_the_ids_is_waited_for(ids, ages, ordered, taken):
    now = datetime(2026, 6, 1, 12)

    rows = [fold_row(i, now - timedelta(seconds=age)) for i, age in zip(ids, ages, strict=True)]
    assert len(summaries.usable_prefix(rows, 10, now, ordered_ids=ordered)) == taken


def test_cli_sets_the_zone_and_currency_and_refuses_bad_ones(app, client, owner):
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["sites", "set", "example.com", "--timezone", "Asia/Kolkata"])
    assert ok.exit_code == 0, ok.output
    ok = runner.invoke(args=["sites", "set", "example.com", "--currency", "jpy"])
    assert ok.exit_code == 0 and "currency JPY" in ok.output
    for args, message in [
        (["--timezone", "Nowhere/City"], "IANA"),
        (["--currency", "XYZQ"], "ISO 4217"),
        ([], "give at least one setting"),
    ]:
        refused = runner.invoke(args=["sites", "set", "example.com", *args])
        assert refused.exit_code == 1 and message in refused.output
    with app.app_context():
        saved = db.session.get(Site, owner)
        assert (saved.timezone, saved.currency) == ("Asia/Kolkata", "JPY")


def test_demo_seed_then_rebuild(app, client, owner):
    runner = app.test_cli_runner()
    seeded = runner.invoke(
        args=["demo", "seed", "--site", "example.com", "--events", "3000", "--days", "5"]
    )
    assert seeded.exit_code == 0, seeded.output
    body = client.get(f"/sites/{owner}/stats.json?period=7d").get_json()
    assert body["totals"]["events"] == 3000
    assert body["totals"]["visits"] > 0 and 0 < body["totals"]["bounce_rate"] < 1
    assert {r["name"] for r in body["rules"]} == {"signup", "paid-customer", "upgrade"}
    # Sessions arrive from many places on many devices: the panels have something to show.
    for dimension, expected in {
        "source": {"Google", "Direct / None", "Newsletter"},
        "channel": {"Organic Search", "Direct", "Email", "Paid Search"},
        "campaign": {"brand-search", "onboarding"},
        "device": {"desktop", "mobile"},
        "country": {"US", "DE"},
    }.items():
        rows = client.get(
            f"/sites/{owner}/breakdown.json?period=7d&dimension={dimension}&limit=100"
        ).get_json()["rows"]
        values = {row["value"] for row in rows}
        assert expected <= values and "(not recorded)" not in values, (dimension, values)
    rebuilt = runner.invoke(args=["analytics", "rebuild", "--site", "example.com"])
    assert rebuilt.exit_code == 0 and "3000 events" in rebuilt.output
    assert client.get(f"/sites/{owner}/stats.json?period=7d").get_json() == body


def test_a_gap_below_the_settled_id_is_final_at_once():
    now = datetime(2026, 6, 1, 12)
    rows = [fold_row(11, now), fold_row(13, now), fold_row(15, now)]
    assert len(summaries.usable_prefix(rows, 10, now, False, settled_id=13)) == 2
    assert len(summaries.usable_prefix(rows, 10, now, False, settled_id=15)) == 3


def test_the_docs_describe_the_reports(client):
    page = client.get("/docs/reports")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "stats.json" in text and "visitors_exact" in text and "before_from" in text


def test_the_fold_thread_leads_once_per_host_and_folds(owner, app):
    with app.app_context():
        store(owner, [Sample(datetime(2026, 6, 1), "pageview", f"u{i}") for i in range(30)])
    first = worker.start_for(app)
    # Another worker of the same database, started once the first leads (started together,
    # either may win the lead).
    second = worker.Folder(app, first.lead_path)
    try:
        assert first is worker.start_for(app)  # started once per app
        assert first.leading.wait(60)  # an availability bound: a loaded machine is slow to start it
        second.start()
        assert not second.leading.wait(1.5)  # the other waits for the lead
        with app.app_context():
            deadline = datetime.now() + timedelta(seconds=10)
            while summaries.pending(db.engine) and datetime.now() < deadline:
                threading.Event().wait(0.2)
            assert summaries.pending(db.engine) == 0
    finally:
        first.stop()
        second.stop()


def test_a_failing_fold_leaves_the_report_readable(client, site, app):
    site_id = site[0]
    with app.app_context():  # a broken summaries state: the cursor row is gone
        db.session.execute(db.text("DELETE FROM analytics_cursor"))
        db.session.commit()
    answer = client.get(f"/sites/{site_id}/stats.json?period=today")
    assert answer.status_code == 200 and answer.get_json()["totals"]["events"] == 0
    assert client.get(f"/sites/{site_id}/").status_code == 200
