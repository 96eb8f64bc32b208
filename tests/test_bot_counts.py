"""Browser requests dropped as bots are counted per site, day and bot, in batches, and the
live view says "3 requests filtered as bots (HeadlessChrome)"."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from datalook.browser import bot_counts
from datalook.browser.bots import bot_name
from datalook.browser.models import BotRequests
from datalook.extensions import db
from datalook.models import Site, utcnow
from tests.factories import event_count, make_site, make_user
from tests.test_collect import CHROME, BrowserSite, collect
from tests.test_event_api import event
from tests.test_postgres import pg_app  # noqa: F401 - a fixture, used by name

HEADLESS = CHROME.replace("Chrome/", "HeadlessChrome/")


@pytest.mark.parametrize(
    ("user_agent", "name"),
    [
        (HEADLESS, "HeadlessChrome"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "Googlebot"),
        ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", "bingbot"),
        ("curl/8.5.0", "curl"),
        ("python-requests/2.32.3", "python-requests"),
        (CHROME + " Playwright/1.49", "Playwright"),
        ("", "no User-Agent"),
        (None, "no User-Agent"),
        ("Mozilla", "short User-Agent"),
    ],
)
def test_each_bot_gets_a_short_name(user_agent, name):
    assert bot_name(user_agent) == name


@pytest.fixture
def browser_site(app, owner) -> BrowserSite:
    """The logged-in owner's site, for /collect."""
    with app.app_context():
        site = db.session.get(Site, owner)
        return BrowserSite(site.id, site.site_key, site.domain, f"https://{site.domain}")


def _rows(app) -> list[tuple]:
    with app.app_context():
        return [
            (r.site_id, r.day, r.bot, r.requests)
            for r in db.session.scalars(
                select(BotRequests).order_by(BotRequests.day, BotRequests.bot)
            )
        ]


def test_the_live_view_counts_dropped_bots_by_name(app, client, browser_site):
    for _ in range(3):
        assert collect(client, browser_site, event(), user_agent=HEADLESS).status_code == 204
    collect(client, browser_site, event(), user_agent="curl/8.5.0")
    collect(client, browser_site, event(), user_agent=CHROME)  # a person: stored, not counted
    assert event_count(app) == 1
    feed = client.get(f"/sites/{browser_site.id}/live.json").get_json()
    assert feed["bots"] == {
        "days": 7,
        "requests": 4,
        "by_bot": [{"bot": "HeadlessChrome", "requests": 3}, {"bot": "curl", "requests": 1}],
    }
    today = utcnow().date()
    assert _rows(app) == [
        (browser_site.id, today, "HeadlessChrome", 3),
        (browser_site.id, today, "curl", 1),
    ]
    # The live view's script writes the sentence from it.
    page = client.get(f"/sites/{browser_site.id}/live").get_data(as_text=True)
    assert "data-live-bots" in page


def test_a_refused_request_is_not_counted_as_a_bot(app, client, browser_site):
    # An invalid event is refused before the bot check: the bot's request says why.
    refused = collect(client, browser_site, {"event_name": "nope"}, user_agent=HEADLESS)
    assert refused.status_code == 400
    assert client.get(f"/sites/{browser_site.id}/live.json").get_json()["bots"]["requests"] == 0


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request):
    """The app on SQLite, then on PostgreSQL."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


def test_counts_are_written_in_batches(any_app):
    app = any_app
    with app.app_context():
        site_id = make_site(make_user(), "bots.example").id
    day = date(2026, 1, 2)
    counter = bot_counts.BotCounter(interval=3600)
    counter.record(site_id, day, "Googlebot")
    counter.record(site_id, day, "Googlebot")
    counter.record(site_id, day - timedelta(days=1), "Googlebot")
    counter.record(site_id + 1000, day, "Googlebot")  # a site deleted meanwhile: dropped
    assert not counter.due()  # nothing is written per request
    assert _rows(app) == []
    with app.app_context():
        counter.flush(db.engine)
        counter.record(site_id, day, "Googlebot")
        counter.flush(db.engine)
        counter.flush(db.engine)  # nothing pending: nothing added
    assert _rows(app) == [
        (site_id, day - timedelta(days=1), "Googlebot", 1),
        (site_id, day, "Googlebot", 3),
    ]
    with app.app_context(), db.engine.connect() as connection:
        assert bot_counts.recent(connection, site_id, day, days=1).bots == [("Googlebot", 3)]
        assert bot_counts.recent(connection, site_id, day, days=2).requests == 4


def test_a_flood_of_made_up_agents_is_bounded_in_memory():
    counter = bot_counts.BotCounter()
    day = date(2026, 1, 2)
    for n in range(bot_counts.MAX_BUCKETS + 50):
        counter.record(1, day, f"bot{n}")
    taken = counter._take()
    assert len(taken) == bot_counts.MAX_BUCKETS + 1
    assert taken[(1, day, bot_counts.OTHER)] == 50
