"""The JSON reports behave as one product: the same 400 for a bad parameter, a 401 (not a
redirect) when not logged in, money in the site's currency, one "All time", and one
answer to a stored time zone that this server does not know."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from datalook.analytics import freshness, ranges
from datalook.analytics.funnels import repository as funnel_store
from datalook.analytics.funnels.definition import parse_definition
from datalook.extensions import db
from datalook.models import Event, Site
from tests.conftest import add_site, sign_up
from tests.funnel_data import E, set_timezone, store
from tests.test_postgres import pg_app  # noqa: F401 - a fixture, used by name

HOME = {"event_name": "pageview", "page_path": "/"}
PAID = {"event_name": "success", "name": "paid"}
STEPS = [("step", json.dumps(HOME)), ("step", json.dumps(PAID))]


def _now() -> datetime:
    """Naive UTC now, as events are stored."""
    return datetime.now(UTC).replace(tzinfo=None)


def set_currency(app, site_id: int, currency: str) -> None:
    """Give a site its report currency (as the settings form would)."""
    with app.app_context():
        db.session.execute(update(Site).where(Site.id == site_id).values(currency=currency))
        db.session.commit()


def fold(app) -> None:
    """Fold the stored events into the summaries (the fold thread's work)."""
    with app.app_context():
        freshness.catch_up_summaries(None)


def save_funnel(app, site_id: int) -> int:
    """A saved two-step funnel: home page, then a paid success."""
    with app.app_context():
        definition = parse_definition([HOME, PAID], "24h", "ordered")
        return funnel_store.save(db.session(), site_id, "Checkout", definition, None).id


@pytest.fixture
def shop(app, client):
    """An owner's site with a saved funnel: (site id, funnel id); `client` is logged in."""
    sign_up(client)
    site_id = add_site(client)
    return site_id, save_funnel(app, site_id)


def report_urls(site_id: int, funnel_id: int) -> dict[str, str]:
    """Every JSON report of a site, with the parameters it needs to answer 200."""
    base = f"/sites/{site_id}"
    return {
        "stats": f"{base}/stats.json",
        "funnel": f"{base}/funnel.json?{urlencode(STEPS)}",
        "saved_funnel": f"{base}/funnels/{funnel_id}.json",
        "journeys": f"{base}/journeys.json",
        "next_steps": f"{base}/journeys/next.json?path=/",
        "live": f"{base}/live.json",
    }


def with_args(url: str, **args: str) -> str:
    """The URL with these query parameters set (replacing any of the same name)."""
    path, _, query = url.partition("?")
    kept = [(name, value) for name, value in parse_qsl(query) if name not in args]
    return f"{path}?{urlencode([*kept, *args.items()])}"


# --- 1. one code for a bad parameter, the parameter named ------------------------------------

BAD_PARAMETERS = [
    ("stats", {"period": "fortnight"}, "period"),
    ("stats", {"from": "2026-02-30", "to": "2026-03-01"}, "from"),
    ("funnel", {"window": "0m"}, "window"),
    ("funnel", {"mode": "loose"}, "mode"),
    ("saved_funnel", {"from": "2026-01-02", "to": "2026-01-01"}, "to"),
    ("journeys", {"steps": "99"}, "steps"),
    ("journeys", {"period": "all", "from": "2026-01-01", "to": "2026-01-02"}, "period"),
    ("next_steps", {"path": "pricing"}, "path"),
    ("next_steps", {"to": "2026-01-01"}, "from"),
    ("live", {"after": "yesterday"}, "after"),
    ("live", {"type": "purchase"}, "type"),
]


@pytest.mark.parametrize(("report", "args", "field"), BAD_PARAMETERS)
def test_every_report_answers_a_bad_parameter_alike(client, shop, report, args, field):
    url = with_args(report_urls(*shop)[report], **args)
    response = client.get(url)
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request"  # as /event answers an invalid event
    assert [problem["field"] for problem in error["errors"]] == [field]
    assert error["errors"][0]["message"] == error["message"]


# --- 2. not logged in: 401 in the envelope for JSON, the log-in page for people -------------

JSON_PATHS = [*report_urls(1, 1), "browser_status", "key_status"]


def _json_url(site_id: int, funnel_id: int, name: str) -> str:
    """A JSON endpoint of the site by name (the reports and the quests' status polls)."""
    extra = {
        "browser_status": f"/sites/{site_id}/quests/browser-sdk/status.json",
        "key_status": f"/sites/{site_id}/keys/somekey/status.json",
    }
    return extra.get(name) or report_urls(site_id, funnel_id)[name]


@pytest.mark.parametrize("name", JSON_PATHS)
def test_json_endpoints_answer_401_when_not_logged_in(app, shop, name):
    url = _json_url(*shop, name)
    response = app.test_client().get(url)
    assert response.status_code == 401, url
    assert response.mimetype == "application/json"
    assert "Location" not in response.headers
    assert response.get_json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("name", [*report_urls(1, 1)])
def test_other_users_sites_stay_404(app, shop, name):
    stranger = app.test_client()
    sign_up(stranger, "stranger@example.com")
    response = stranger.get(_json_url(*shop, name))
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    "page", ["/", "/funnels/", "/funnels/{funnel}", "/journeys/", "/live", "/reports/totals.csv"]
)
def test_pages_still_send_people_to_log_in(app, shop, page):
    site_id, funnel_id = shop
    url = f"/sites/{site_id}{page.replace('{funnel}', str(funnel_id))}"
    response = app.test_client().get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


# --- 3. money in the site's currency, in every report ----------------------------------------

MONEY = [
    ("JPY", 1_250_000_000, "1250", "¥1,250"),
    ("EUR", 12_500_000, "12.50", "€12.50"),
    # Pages round to the currency's minor unit; JSON and CSV keep every stored digit.
    ("USD", 10_000_001, "10.000001", "$10.00"),
    ("BHD", 1_500_000, "1.500", "BHD1.500"),
]


@pytest.mark.parametrize(("currency", "micros", "text", "shown"), MONEY)
def test_funnels_write_money_as_stats_json_does(app, client, shop, currency, micros, text, shown):
    site_id, funnel_id = shop
    set_currency(app, site_id, currency)
    start = _now() - timedelta(hours=2)
    store(
        app,
        site_id,
        [E("u:1", start), E("u:1", start + timedelta(minutes=5), "success", "/ok", "paid", micros)],
    )
    urls = report_urls(site_id, funnel_id)
    stats = client.get(urls["stats"]).get_json()
    assert stats["totals"]["revenue"] == text
    assert [rule["revenue"] for rule in stats["rules"] if rule["name"] == "paid"] == [text]
    for name in ("funnel", "saved_funnel"):
        steps = client.get(urls[name]).get_json()["steps"]
        assert [step["revenue"] for step in steps] == [stats["previous"]["revenue"], text], name
    page = client.get(f"/sites/{site_id}/funnels/{funnel_id}").get_data(as_text=True)
    assert f"<td>{shown}</td>" in page


# --- 4. one "All time" ------------------------------------------------------------------------

ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Kiritimati"]


@pytest.mark.parametrize("zone", ZONES)
def test_all_time_starts_on_the_first_counted_event_in_every_report(app, client, shop, zone):
    site_id, funnel_id = shop
    set_timezone(app, site_id, zone)
    # Before the site was added (a backfill, seeded data): "All time" must still hold it.
    first = (_now() - timedelta(days=40)).replace(hour=3, minute=40, second=0, microsecond=0)
    test_event = first - timedelta(days=20)  # a test key's event counts nowhere
    store(
        app,
        site_id,
        [
            E("u:1", first),
            E("u:1", first + timedelta(minutes=2), "success", "/ok", "paid", 1_000_000),
            E("u:9", test_event),
        ],
    )
    with app.app_context():
        db.session.execute(
            update(Event).where(Event.occurred_at == test_event).values(is_test=True)
        )
        db.session.commit()
    fold(app)
    tz = ZoneInfo(zone)
    expected_first = first.replace(tzinfo=UTC).astimezone(tz).date()
    hour_start = first.replace(minute=0).replace(tzinfo=UTC).astimezone(tz).date()
    urls = report_urls(site_id, funnel_id)
    stats = client.get(with_args(urls["stats"], period="all")).get_json()
    # The first summarised hour may start on the local day before (zones off whole hours).
    assert stats["from"] in {expected_first.isoformat(), hour_start.isoformat()}
    assert stats["totals"]["conversions"] == 1
    for name in ("funnel", "saved_funnel"):
        body = client.get(with_args(urls[name], period="all")).get_json()
        assert [step["visitors"] for step in body["steps"]] == [1, 1], name
    journeys = client.get(with_args(urls["journeys"], period="all")).get_json()
    assert journeys["sessions_total"] == 1
    following = client.get(with_args(urls["next_steps"], period="all")).get_json()
    assert following["sessions_total"] == 1
    with app.app_context():
        site = db.session.get(Site, site_id)
        rng = ranges.site_range(site, {"period": "all"})
    assert rng.first.isoformat() == stats["from"]


def test_all_time_of_a_site_without_events_is_today(app, client, shop):
    site_id, _funnel = shop
    stats = client.get(f"/sites/{site_id}/stats.json?period=all").get_json()
    assert stats["from"] == stats["to"] == _now().date().isoformat()


# --- 5. a stored zone this server does not know -----------------------------------------------


def test_an_unknown_stored_zone_is_utc_in_every_report_and_page(app, client, shop):
    site_id, funnel_id = shop
    set_timezone(app, site_id, "Mars/Olympus_Mons")
    # One visit just after UTC midnight of a past day: it belongs to that UTC day.
    day = (_now() - timedelta(days=3)).date()
    moment = datetime(day.year, day.month, day.day, 0, 30)
    store(
        app,
        site_id,
        [E("u:1", moment), E("u:1", moment + timedelta(minutes=1), "success", "/ok", "paid", 5)],
    )
    fold(app)
    span = {"from": day.isoformat(), "to": day.isoformat()}
    urls = report_urls(site_id, funnel_id)
    for name, url in urls.items():
        response = client.get(with_args(url, **span) if name != "live" else url)
        assert response.status_code == 200, (name, response.get_data(as_text=True)[:300])
    stats = client.get(with_args(urls["stats"], **span)).get_json()
    assert stats["timezone"] == "UTC" and stats["totals"]["events"] == 2
    steps = client.get(with_args(urls["funnel"], **span)).get_json()["steps"]
    assert [step["visitors"] for step in steps] == [1, 1]
    assert client.get(with_args(urls["journeys"], **span)).get_json()["sessions_total"] == 1
    for page in ("/", f"/funnels/{funnel_id}", "/journeys/", "/live"):
        response = client.get(f"/sites/{site_id}{page}")
        assert response.status_code == 200, page
    assert "Days cut at midnight in <strong>UTC</strong>" in client.get(
        f"/sites/{site_id}/"
    ).get_data(as_text=True)


def test_zone_refuses_unknown_names_and_site_zone_falls_back():
    with pytest.raises(ranges.UnknownZone):
        ranges.zone("Mars/Olympus_Mons")
    assert ranges.site_zone("Mars/Olympus_Mons").key == "UTC"
    assert ranges.site_zone(None).key == "UTC"
    assert ranges.site_zone("Europe/Berlin").key == "Europe/Berlin"


# --- the same on PostgreSQL ---------------------------------------------------------------------


def test_money_all_time_and_an_unknown_zone_on_postgresql(pg_app):  # noqa: F811
    client = pg_app.test_client()
    sign_up(client)

    def new_shop(domain: str) -> tuple[int, int]:
        """Another site of the owner, with its saved funnel."""
        site_id = add_site(client, domain)
        return site_id, save_funnel(pg_app, site_id)

    test_funnels_write_money_as_stats_json_does(pg_app, client, new_shop("a.example"), *MONEY[0])
    test_all_time_starts_on_the_first_counted_event_in_every_report(
        pg_app, client, new_shop("b.example"), "Asia/Kolkata"
    )
    test_an_unknown_stored_zone_is_utc_in_every_report_and_page(
        pg_app, client, new_shop("c.example")
    )
