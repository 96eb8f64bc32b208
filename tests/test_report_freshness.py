"""Reports never wait for a backlog: a read catches up for REPORT_CATCHUP_BUDGET_MS at most,
then answers from what is folded and says so (`freshness`); the fold's heartbeat in /readyz."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from datalook.analytics import backlog, cursors, freshness, heartbeat, kinds, sessions, worker
from datalook.analytics import catch_up as derive
from datalook.analytics.backlog import Freshness
from datalook.analytics.rollups import fold as summaries
from datalook.analytics.rollups.models import SummaryCursor
from datalook.config import ConfigError, from_environ
from datalook.extensions import db
from datalook.models import Event
from tests.conftest import add_site, sign_up
from tests.test_funnels_api import STEPS, save_funnel
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

# A backlog far beyond what a read may fold within BACKLOG_BUDGET_MS (the fold takes tens
# of microseconds per event), so that every read answers before it is caught up.
BACKLOG = 20_000
BACKLOG_BUDGET_MS = 20
BOUND_S = 5.0  # no answer may take longer because of a backlog
RANGE = {"period": "7d"}


def now() -> datetime:
    """Naive UTC now, as events are stored."""
    return datetime.now(UTC).replace(tzinfo=None)


def bulk_store(app, site_id: int, count: int, visitors: int = 5_000, who: str = "v") -> None:
    """Insert `count` events in one statement per 50,000 (of `visitors` visitors named
    `who`<n> over the last two hours: mostly pageviews and clicks of /docs pages, one in
    ten a step of the funnel), as ingestion stores them, without folding anything."""
    kinds_cycle = [("pageview", f"/docs/{n}", None, None) for n in range(12)]
    kinds_cycle += [("click", f"/docs/{n}", None, None) for n in range(5)]
    kinds_cycle += [("pageview", "/", None, None), ("pageview", "/pricing", None, None)]
    kinds_cycle.append(("success", "/ok", "paid", 9_990_000))
    start = now() - timedelta(hours=2)
    step = timedelta(hours=2) / count
    received = now()
    with app.app_context():
        for first in range(0, count, 50_000):
            rows = []
            for i in range(first, min(first + 50_000, count)):
                event_name, path, name, value = kinds_cycle[i % len(kinds_cycle)]
                visitor = f"u:{who}{i % visitors}"
                rows.append(
                    {
                        "site_id": site_id,
                        "event_name": event_name,
                        "name": name,
                        "page_path": path,
                        "visitor_id": visitor,
                        "success_user_id": visitor[2:],
                        "success_value_micros": value,
                        "occurred_at": start + step * i,
                        "received_at": received,
                    }
                )
            db.session.execute(Event.__table__.insert(), rows)
            db.session.commit()


def fold_everything(app) -> None:
    """What the fold process does, tick after tick, until nothing is left (then the rest of
    the saved funnels' derivation, as `flask funnels catch-up` does)."""
    folder = worker.folder_for(app)
    for _ in range(500):
        more = folder._tick()
        with app.app_context():
            left = heartbeat.pending(db.session)
            db.session.remove()
        if not more and left == 0:
            break
    else:
        raise AssertionError("the fold did not catch up")
    with app.app_context():
        derive.catch_up_all(db.session())
        db.session.remove()


def report_urls(site_id: int, funnel_id: int) -> list[str]:
    """Every report JSON that says how current it is (all but live.json)."""
    steps = [("step", json.dumps(s)) for s in STEPS]
    funnel = urlencode([*steps, ("window", "24h"), ("mode", "ordered"), *RANGE.items()])
    return [
        f"/sites/{site_id}/stats.json?{urlencode(RANGE)}",
        f"/sites/{site_id}/funnel.json?{funnel}",
        f"/sites/{site_id}/funnels/{funnel_id}.json?{urlencode(RANGE)}",
        f"/sites/{site_id}/journeys.json?{urlencode(RANGE)}",
        f"/sites/{site_id}/journeys/next.json?{urlencode({**RANGE, 'path': '/'})}",
    ]


def page_urls(site_id: int, funnel_id: int) -> list[str]:
    """The pages that show the notice."""
    return [
        f"/sites/{site_id}/?{urlencode(RANGE)}",
        f"/sites/{site_id}/funnels/{funnel_id}?{urlencode(RANGE)}",
        f"/sites/{site_id}/journeys/?{urlencode(RANGE)}",
    ]


def timed_get(client, url: str):
    """GET `url`; the response and how long it took."""
    started = time.monotonic()
    response = client.get(url)
    return response, time.monotonic() - started


@pytest.fixture
def shop(app, client):
    """A site with a saved funnel and some events, all folded and derived: (site, funnel)."""
    return make_shop(app, client)


def make_shop(app, client) -> tuple[int, int]:
    """Sign up, add a site with a saved funnel and 900 events, fold and derive them all."""
    sign_up(client)
    site_id = add_site(client)
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    bulk_store(app, site_id, 900, visitors=50, who="first")
    fold_everything(app)
    return site_id, funnel_id


def test_a_backlog_is_answered_at_once_from_what_is_folded_then_in_full(make_app):
    app = make_app(REPORT_CATCHUP_BUDGET_MS=BACKLOG_BUDGET_MS)
    client = app.test_client()
    site_id, funnel_id = make_shop(app, client)
    bulk_store(app, site_id, BACKLOG)  # the fold process has fallen behind (it is not running)
    with app.app_context():
        newest = backlog.newest_id(db.session)

    timings = {}
    for url in report_urls(site_id, funnel_id):
        response, took = timed_get(client, url)
        timings[url.split("?")[0]] = round(took, 2)
        assert response.status_code == 200, (url, response.get_data(as_text=True)[:300])
        assert took < BOUND_S, (url, took)
        current = response.get_json()["freshness"]
        assert current["complete"] is False, (url, current)
        assert 0 < current["pending_events"] <= BACKLOG, (url, current)
        until = datetime.fromisoformat(current["folded_until"].removesuffix("Z"))
        assert until <= now(), (url, current)
    for url in page_urls(site_id, funnel_id):
        response, took = timed_get(client, url)
        assert response.status_code == 200 and took < BOUND_S, (url, took)
        assert "newer events are being processed" in response.get_data(as_text=True), url
    print("answers with a backlog of", BACKLOG, "events (s):", timings)

    fold_everything(app)  # the fold process catches up

    with app.app_context():
        received = db.session.scalar(select(Event.received_at).where(Event.id == newest))
    for url in report_urls(site_id, funnel_id):
        response = client.get(url)
        assert response.status_code == 200
        assert response.get_json()["freshness"] == {
            "complete": True,
            "folded_until": backlog.iso(received),
            "pending_events": 0,
        }, url
    stats = client.get(report_urls(site_id, funnel_id)[0]).get_json()
    assert stats["totals"]["events"] == 900 + BACKLOG  # every event counted once
    for url in page_urls(site_id, funnel_id):
        assert "being processed" not in client.get(url).get_data(as_text=True), url


def test_a_small_backlog_is_caught_up_by_the_read_itself(app, client, shop):
    site_id, funnel_id = shop
    bulk_store(app, site_id, 300, visitors=20)
    for url in report_urls(site_id, funnel_id):
        current = client.get(url).get_json()["freshness"]
        assert current["complete"] is True and current["pending_events"] == 0, url


def test_a_budget_of_zero_reads_what_the_fold_left(make_app):
    app = make_app(REPORT_CATCHUP_BUDGET_MS=0)
    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    bulk_store(app, site_id, 10, visitors=3)
    body = client.get(f"/sites/{site_id}/stats.json").get_json()
    assert body["totals"]["events"] == 0
    assert body["freshness"]["complete"] is False
    assert body["freshness"]["pending_events"] == 10
    with app.app_context():
        assert summaries.pending(db.engine) == 10  # the read wrote nothing


def test_on_postgresql_a_read_past_its_budget_says_so_then_counts_everything(pg_app):  # noqa: F811
    client = pg_app.test_client()
    sign_up(client)
    site_id = add_site(client)
    bulk_store(pg_app, site_id, 12_000, visitors=40)
    pg_app.config["REPORT_CATCHUP_BUDGET_MS"] = 0
    for url in report_urls_without_funnels(site_id):
        current = client.get(url).get_json()["freshness"]
        assert current["complete"] is False and current["pending_events"] == 12_000, url
    pg_app.config["REPORT_CATCHUP_BUDGET_MS"] = 500
    fold_everything(pg_app)
    for url in report_urls_without_funnels(site_id):
        current = client.get(url).get_json()["freshness"]
        assert current["complete"] is True and current["pending_events"] == 0, url


def report_urls_without_funnels(site_id: int) -> list[str]:
    """The JSON reports of a site without a saved funnel."""
    return [url for url in report_urls(site_id, 0) if "/funnels/" not in url]


# --- the catch-ups stop at their deadline ---------------------------------------------------


def test_each_catch_up_begins_no_batch_past_its_deadline(app, client):
    sign_up(client)
    site_id = add_site(client)
    bulk_store(app, site_id, 50, visitors=5)
    past = time.monotonic() - 1
    with app.app_context():
        session = db.session()
        assert summaries.catch_up(db.engine, app.instance_path, deadline=past) == 0
        assert sessions.catch_up(session, past) == 0
        assert kinds.catch_up(session, deadline=past) == 0
        assert sessions.position(session) == kinds.position(session) == 0
        soon = time.monotonic() + 30
        assert summaries.catch_up(db.engine, app.instance_path, deadline=soon) == 50
        assert sessions.catch_up(session, soon) == 50
        assert kinds.ready(session, soon)
        assert kinds.position(session) == backlog.newest_id(session)


def test_batches_stop_between_two_once_the_deadline_passes(app, client, monkeypatch):
    sign_up(client)
    site_id = add_site(client)
    bulk_store(app, site_id, 40, visitors=5)
    monkeypatch.setattr(cursors, "BATCH", 10)
    clock = [1000.0]
    monkeypatch.setattr(cursors, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    derived = []

    def slow(tx, after_id, up_to_id):
        """A derivation whose batch takes 0.2 s (of the clock the catch-up reads)."""
        derived.append(up_to_id - after_id)
        clock[0] += 0.2
        return sessions.derive_changes(tx, after_id, up_to_id)

    with app.app_context():
        session = db.session()
        passed = cursors.derive_in_two_phases(
            session, sessions.CURSOR, slow, sessions.store_changes, deadline=1000.3
        )
        assert passed == 20 and derived == [10, 10]  # the second batch began before it
        assert sessions.position(session) == 20 == backlog.newest_id(session) - 20


def test_a_read_waits_for_the_host_lock_no_longer_than_its_budget(app, client):
    sign_up(client)
    site_id = add_site(client)
    bulk_store(app, site_id, 30, visitors=5)
    held, release = threading.Event(), threading.Event()

    def other_fold():
        """Another process's fold holding the host lock (a long catch-up)."""
        with summaries.host_lock(app_engine, app.instance_path):
            held.set()
            release.wait(30)

    with app.app_context():
        app_engine = db.engine
    thread = threading.Thread(target=other_fold)
    thread.start()
    try:
        assert held.wait(10)
        response, took = timed_get(client, f"/sites/{site_id}/stats.json")
        assert response.status_code == 200 and took < BOUND_S
        assert response.get_json()["freshness"]["complete"] is False
        assert response.get_json()["freshness"]["pending_events"] == 30
    finally:
        release.set()
        thread.join()
    assert client.get(f"/sites/{site_id}/stats.json").get_json()["freshness"]["complete"]


def test_a_failing_catch_up_still_answers(app, client, monkeypatch):
    sign_up(client)
    site_id = add_site(client)
    bulk_store(app, site_id, 5, visitors=2)

    def broken(*_args, **_kwargs):
        raise RuntimeError("the writers' lock is busy")

    monkeypatch.setattr(sessions, "derive_changes", broken)
    monkeypatch.setattr(cursors, "BATCH", 2)
    response = client.get(f"/sites/{site_id}/journeys.json")
    assert response.status_code == 200
    assert response.get_json()["freshness"]["complete"] is False


# --- what the freshness says, and how pages say it ------------------------------------------


def test_freshness_measures_the_store_furthest_behind(app, client):
    sign_up(client)
    site_id = add_site(client)
    bulk_store(app, site_id, 10, visitors=2)
    with app.app_context():
        session = db.session()
        first, last = session.execute(select(func.min(Event.id), func.max(Event.id))).one()
        stamped = session.scalar(select(Event.received_at).where(Event.id == first + 3))
        behind = backlog.measure(session, last, [last, first + 3], finished=False)
        assert behind == Freshness(False, stamped, 6)
        # A catch-up that ended by itself is complete (on PostgreSQL a few events may wait
        # for earlier ids to commit).
        assert backlog.measure(session, last, [first + 3], finished=True).complete
        nothing = backlog.measure(session, last, [0], finished=False)
        assert nothing.folded_until == session.scalar(
            select(Event.received_at).where(Event.id == first)
        )
        assert backlog.from_events(session) == Freshness(
            True, session.scalar(select(Event.received_at).where(Event.id == last)), 0
        )


def test_the_notice_reads_like_a_person_wrote_it():
    berlin = ZoneInfo("Europe/Berlin")
    today = datetime(2026, 11, 3, 13, 2)  # 14:02 in Berlin
    assert backlog.notice(Freshness(True, today, 0), berlin) is None
    assert (
        backlog.notice(Freshness(False, today, 1_234_567), berlin, now=today)
        == "Figures up to 14:02; 1.2M newer events are being processed."
    )
    yesterday = backlog.notice(Freshness(False, today, 1), berlin, now=today + timedelta(days=1))
    assert yesterday == "Figures up to 2026-11-03 14:02; 1 newer event is being processed."
    assert [backlog.short_count(n) for n in (950, 1_200, 35_000, 2_000_000)] == [
        "950",
        "1.2k",
        "35k",
        "2.0M",
    ]


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("REPORT_CATCHUP_BUDGET_MS", "-1"),
        ("REPORT_CATCHUP_BUDGET_MS", "9000"),
        ("REPORT_CATCHUP_BUDGET_MS", "half"),
        ("ANALYTICS_FOLD_BEHIND_EVENTS", "0"),
        ("ANALYTICS_FOLD_BEHIND_EVENTS", "many"),
    ],
)
def test_the_settings_are_validated(tmp_path, name, raw):
    with pytest.raises(ConfigError, match=name):
        from_environ({name: raw}, tmp_path)


def test_the_settings_defaults(tmp_path):
    config = from_environ({}, tmp_path)
    assert config["REPORT_CATCHUP_BUDGET_MS"] == 500
    assert config["ANALYTICS_FOLD_BEHIND_EVENTS"] == 50_000
    assert (
        from_environ({"REPORT_CATCHUP_BUDGET_MS": "0"}, tmp_path)["REPORT_CATCHUP_BUDGET_MS"] == 0
    )


# --- the fold's heartbeat in /readyz ---------------------------------------------------------


def readyz(client) -> tuple[int, dict]:
    response = client.get("/readyz")
    return response.status_code, response.get_json()


def test_readyz_reports_the_fold_down_behind_or_ok_and_stays_in_service(make_app):
    app = make_app(ANALYTICS_FOLD_BEHIND_EVENTS=20)
    client = app.test_client()
    status, body = readyz(client)  # no fold process has ever run
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["fold"] == "down" and body["fold"]["last_heartbeat"] is None

    folder = worker.folder_for(app)
    folder._tick()  # a tick of the fold process stamps the heartbeat
    status, body = readyz(client)
    assert status == 200 and body["status"] == "ok" and body["checks"]["fold"] == "ok"
    assert body["fold"]["pending_events"] == 0

    sign_up(client)
    site_id = add_site(client)
    bulk_store(app, site_id, 21, visitors=3)  # more than the threshold, not folded
    status, body = readyz(client)
    assert status == 200 and body["status"] == "degraded"
    assert body["checks"]["fold"] == "behind" and body["fold"]["pending_events"] == 21

    folder._tick()
    assert readyz(client)[1]["checks"]["fold"] == "ok"

    with app.app_context():  # no tick for longer than max(3 intervals, 30 s): down
        db.session.execute(
            update(SummaryCursor)
            .where(SummaryCursor.name == heartbeat.row_name())
            .values(updated_at=now() - timedelta(seconds=31))
        )
        db.session.commit()
    status, body = readyz(client)
    assert status == 200 and body["checks"]["fold"] == "down"
    assert body["fold"]["last_heartbeat"].endswith("Z")


def test_a_long_catch_up_in_a_tick_keeps_the_heartbeat_stamped(app, monkeypatch):
    """A saved funnel's first derivation can take minutes in one step of a tick: the
    heartbeat goes on meanwhile, so /readyz does not call the fold down."""
    monkeypatch.setattr(heartbeat, "BEAT_WHILE_BUSY_S", 0.05)
    stamps: list = []

    def long_catch_up(session, seconds=None):
        with app.app_context():
            first = heartbeat.last_beat(db.session)  # stamped at the tick's start
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                db.session.remove()
                stamped = heartbeat.last_beat(db.session)
                if stamped != first:
                    stamps.append(stamped)
                    break
                time.sleep(0.02)
            db.session.remove()
        return {"kinds": 0}

    monkeypatch.setattr(worker, "catch_up_all", long_catch_up)
    worker.folder_for(app)._tick()
    assert stamps, "no heartbeat while the catch-up ran"


def test_a_heartbeat_is_stale_after_three_intervals_or_thirty_seconds():
    assert heartbeat.stale_after(1) == 30
    assert heartbeat.stale_after(10) == 30
    assert heartbeat.stale_after(60) == 180


def test_each_host_has_its_own_heartbeat():
    assert heartbeat.row_name("web-1") == "fold@web-1"
    assert heartbeat.row_name("x" * 100) == "fold@" + "x" * 27  # fits the table's 32


def test_the_fold_ticks_at_once_when_it_starts(app):
    folder = worker.Folder(app, str(app.instance_path) + "/lead", interval=3600)
    folder.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with app.app_context():
                stamped = heartbeat.last_beat(db.session)
                db.session.remove()
            if stamped is not None:
                break
            time.sleep(0.1)
        assert stamped is not None
    finally:
        folder.stop()


def test_the_catch_up_deadline_is_the_configured_budget(make_app):
    app = make_app(REPORT_CATCHUP_BUDGET_MS=250)
    with app.app_context():
        left = freshness.report_deadline() - time.monotonic()
    assert 0.2 < left <= 0.25
