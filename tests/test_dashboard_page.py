"""The dashboard page: number formats, the change arrows, the chart's axis and buckets, the
panels (read from the breakdown report) and the filters in the URL, Details with CSV, and
current visitors."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from datalook.acquisition.dimensions import DIMENSIONS, parse_filter
from datalook.analytics.ranges import site_range
from datalook.analytics.reports.current import current_visitors
from datalook.analytics.reports.dimension_rows import dimension_rows, dimension_tables
from datalook.extensions import db
from datalook.models import Site
from datalook.web import chart, dashboard, numbers, panels
from tests.conftest import add_site, sign_up
from tests.factories import make_key

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
DESKTOP = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)


def _now() -> datetime:
    """Naive UTC now (the storage convention)."""
    return datetime.now(UTC).replace(tzinfo=None)


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0"), (7199, "7,199"), (1_234_567, "1,234,567"), (None, "—"), (2.6, "3")],
)
def test_counts_have_thousands_separators(value, shown):
    assert numbers.num(value) == shown


@pytest.mark.parametrize(
    ("value", "currency", "shown"),
    [
        (46_664_738, "USD", "$46.66"),  # stored millionths, rounded to the cent
        ("25.00", "USD", "$25.00"),  # a JSON decimal string
        (Decimal("1234.5"), "EUR", "€1,234.50"),
        (1_250_000_000, "JPY", "¥1,250"),
        (0, "USD", "$0.00"),
    ],
)
def test_money_is_rounded_to_the_currency(value, currency, shown):
    assert numbers.money(value, currency) == shown


@pytest.mark.parametrize(
    ("function", "value", "shown"),
    [
        (numbers.pct, 0.1234, "12.3%"),
        (numbers.pct, 0, "0.0%"),
        (numbers.duration, 45, "45s"),
        (numbers.duration, 65, "1m 05s"),
        (numbers.duration, 3725, "1h 02m"),
        (numbers.decimal, 2.345678, "2.35"),
    ],
)
def test_ratios_and_durations(function, value, shown):
    assert function(value) == shown


@pytest.mark.parametrize(
    ("now", "before", "kwargs", "text", "css"),
    [
        (112, 100, {}, "↑ 12%", "change-good"),
        (97, 100, {}, "↓ 3%", "change-bad"),
        (5, 0, {}, "—", "change-neutral"),  # nothing to compare with
        (0, 0, {}, "—", "change-neutral"),
        (100, 100.2, {}, "0%", "change-neutral"),  # never "−0%"
        (0, 50, {"comparable": False}, "—", "change-neutral"),  # a range still to come
        (0.3, 0.4, {"lower_is_better": True}, "↓ 25%", "change-good"),
        ("12.50", "10.00", {}, "↑ 25%", "change-good"),  # money as JSON writes it
    ],
)
def test_the_change_from_the_previous_period(now, before, kwargs, text, css):
    shown = numbers.change(now, before, **kwargs)
    assert (shown.text, shown.css) == (text, css)
    assert "−0" not in shown.text and "-0" not in shown.text


@pytest.mark.parametrize(
    ("high", "whole", "ticks"),
    [
        (0, True, [0]),  # an empty chart: one baseline, never "1, 0, 0"
        (1, True, [0, 1]),
        (3, True, [0, 1, 2, 3]),
        (5300, True, [0, 2000, 4000, 6000]),  # not an axis to 10,000
        (98, True, [0, 25, 50, 75, 100]),
        (7, True, [0, 2, 4, 6, 8]),
        (0.4, False, [0, 0.1, 0.2, 0.3, 0.4]),
        (5000.01, False, [0, 2000, 4000, 6000]),
    ],
)
def test_the_value_axis_has_round_steps_scaled_to_the_data(high, whole, ticks):
    assert chart.nice_ticks(high, whole) == ticks


def test_the_chart_marks_the_partial_bucket_and_leaves_the_future_out():
    start = datetime(2026, 3, 1)
    starts = [(start + timedelta(days=i), start + timedelta(days=i + 1)) for i in range(4)]
    labels = [f"2026-03-0{i + 1}" for i in range(4)]
    current = chart.Series(labels, [3.0, 5.0, 2.0, 0.0], ["3", "5", "2", "0"])
    before = chart.Series([f"2026-02-2{i + 5}" for i in range(4)], [1.0] * 4, ["1"] * 4)
    now = start + timedelta(days=2, hours=5)  # during the third day
    built = chart.build(current, before, starts, now, "day", numbers.num, True)
    assert [p.partial for p in built.points] == [False, False, True, False]
    assert built.points[3].y is None and built.points[3].text == "not yet"
    assert built.y_labels == ["6", "4", "2", "0"]
    assert built.line.count("L") == 1  # two complete buckets, then a dashed tail
    assert built.partial_line.count("L") == 1
    assert built.focus_index == 2
    assert built.points[0].label == "Sun 1 Mar" and built.points[0].previous_label == "Wed 25 Feb"


def test_every_dimension_has_a_name_for_people():
    assert set(panels.NAMES) == set(DIMENSIONS)
    assert panels.value_kind("prop:plan") == "Property plan"


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


def _figure(page: str, key: str) -> str:
    """The text of one top figure."""
    return re.search(rf'data-figure="{key}">([^<]*)<', page).group(1)


def _seed(ingest, headers) -> None:
    """Two visitors from Google on a phone who convert, one direct visitor on a desktop."""
    google = {"referrer": "https://www.google.com/", "user_agent": IPHONE}
    for user in ("ann", "ben"):
        _send(ingest, headers, event_name="pageview", success_user_id=user, context=google)
        _send(
            ingest,
            headers,
            event_name="success",
            name="paid",
            success_user_id=user,
            success_value=1234.5,
            page_path="/paid",
            properties={"plan": "pro"},
        )
    _send(
        ingest,
        headers,
        event_name="pageview",
        success_user_id="cid",
        page_path="/docs",
        properties={"plan": "=cmd"},
        context={"user_agent": DESKTOP},
    )


def test_the_panels_read_the_breakdown_and_a_click_filters_everything(client, site):
    site_id, ingest, headers = site
    _seed(ingest, headers)
    page = client.get(f"/sites/{site_id}/?period=today&sources=source").get_data(as_text=True)
    assert _figure(page, "visitors") == "3"
    assert _figure(page, "revenue") == "$2,469.00"
    assert _figure(page, "conversions") == "2"
    assert _figure(page, "events") == "5"
    for panel in ("sources", "pages", "locations", "devices", "goals", "prop"):
        assert f'data-panel="{panel}"' in page
    assert 'data-value="Google"' in page and 'data-value="Direct / None"' in page
    # The property panel adds up: the events without the key are a "(none)" row.
    assert 'data-value="(none)"' in page and 'data-value="pro"' in page
    link = re.search(r'data-value="Google">.*?<a href="([^"]+)"', page, re.S).group(1)
    link = link.replace("&amp;", "&")
    assert parse_qs(urlsplit(link).query)["filter"] == ["source==Google"]

    filtered = client.get(link).get_data(as_text=True)
    assert _figure(filtered, "visitors") == "2"
    assert _figure(filtered, "events") == "4"
    assert "Source is Google" in filtered  # the chip
    assert 'data-value="Direct / None"' not in filtered
    remove = re.search(r'data-filter-chip><span>[^<]*</span> <a href="([^"]+)"', filtered)
    unfiltered = client.get(remove.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert _figure(unfiltered, "visitors") == "3"


@pytest.mark.parametrize(
    ("fields", "visitors"),
    [
        ({"fdim": "device", "fop": "==", "fval": "mobile"}, "2"),
        ({"fdim": "device", "fop": "==", "fval": "desktop"}, "1"),
        ({"fdim": "source", "fop": "!=", "fval": "Google"}, "1"),
        ({"fdim": "page", "fop": "=~", "fval": "PAID"}, "2"),
        ({"fdim": "prop:plan", "fop": "==", "fval": "pro"}, "2"),
    ],
)
def test_the_filter_form_adds_a_filter_to_the_url(client, site, fields, visitors):
    site_id, ingest, headers = site
    _seed(ingest, headers)
    answer = client.get(f"/sites/{site_id}/", query_string={"period": "today", **fields})
    assert answer.status_code == 302
    target = answer.headers["Location"]
    query = parse_qs(urlsplit(target).query)
    assert query["filter"] == [f"{fields['fdim']}{fields['fop']}{fields['fval']}"]
    assert query["period"] == ["today"] and "fdim" not in query
    assert _figure(client.get(target).get_data(as_text=True), "visitors") == visitors


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"fdim": "planet", "fop": "==", "fval": "x"}, "Unknown dimension"),
        ({"fdim": "page", "fop": ">=", "fval": "x"}, "Choose is, is not or contains"),
        ({"fdim": "page", "fop": "==", "fval": ""}, "has no value"),
        ({"filter": "planet==mars"}, "filter: Unknown dimension"),
        ({"filter": "country=DE"}, "filter: Unknown operator"),
    ],
)
def test_a_bad_filter_is_explained_and_dropped(client, site, query, message):
    site_id = site[0]
    answer = client.get(f"/sites/{site_id}/", query_string={"period": "today", **query})
    assert answer.status_code == 302
    assert "filter=" not in answer.headers["Location"]
    page = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert message in page


def test_the_panels_read_once_what_breakdown_json_answers(app, client, site):
    site_id, ingest, headers = site
    _seed(ingest, headers)
    dimensions = ["source", "page", "entry_page", "device", "country", "rule", "prop:plan"]
    with app.app_context():
        owned = db.session.get(Site, site_id)
        rng = site_range(owned, {"period": "today"})
        filters = [parse_filter("device!=desktop")]
        tables = dimension_tables(owned, rng, dimensions, filters, 2)
        for dimension in dimensions:
            alone = dimension_rows(owned, rng, dimension, filters, 2, 0)
            assert tables[dimension].rows == alone.rows, dimension
            assert tables[dimension].total_rows == alone.total_rows, dimension


def test_details_pages_through_a_dimension_and_downloads_csv(client, site):
    site_id, ingest, headers = site
    _seed(ingest, headers)
    base = f"/sites/{site_id}/breakdown?period=today&dimension=page"
    first = client.get(f"{base}&limit=1").get_data(as_text=True)
    assert first.count("<tr data-value=") == 1 and "1–1 of 3" in first
    assert "Next 1" in first
    second = client.get(f"{base}&limit=1&offset=1").get_data(as_text=True)
    assert "2–2 of 3" in second and "Previous 1" in second
    answer = client.get(f"/sites/{site_id}/breakdown.csv?period=today&dimension=page")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert rows[0][:3] == ["page", "visitors", "visits"]
    by_page = {row[0]: row for row in rows[1:]}
    assert by_page["/paid"][rows[0].index("revenue")] == "2469.00"
    plans = client.get(f"/sites/{site_id}/breakdown.csv?period=today&dimension=prop:plan")
    assert "'=cmd" in plans.get_data(as_text=True)  # a spreadsheet must not run it
    json_rows = client.get(
        f"/sites/{site_id}/breakdown.json?period=today&dimension=page&limit=100"
    ).get_json()["rows"]
    assert {r["value"] for r in json_rows} == {"/", "/paid", "/docs"}


@pytest.mark.parametrize(
    "query", ["dimension=planet", "dimension=page&limit=0", "dimension=page&filter=x"]
)
def test_details_with_a_bad_parameter(client, site, query):
    site_id = site[0]
    page = client.get(f"/sites/{site_id}/breakdown?{query}")
    assert page.status_code == 302
    download = client.get(f"/sites/{site_id}/breakdown.csv?{query}")
    assert download.status_code == 400


def test_current_visitors_count_the_last_five_minutes(app, site):
    site_id, ingest, headers = site
    now = _now()
    old = (now - timedelta(minutes=6)).isoformat() + "Z"
    _send(ingest, headers, event_name="pageview", success_user_id="old", timestamp=old)
    _send(ingest, headers, event_name="pageview", success_user_id="new")
    _send(ingest, headers, event_name="pageview", success_user_id="new")
    _send(ingest, headers, event_name="click")  # no visitor id: not a visitor
    with app.app_context():
        seen = current_visitors(site_id, _now())
    assert (seen.count, seen.capped) == (1, False)


def test_the_site_tabs_hold_funnels_and_journeys(client, site):
    page = client.get(f"/sites/{site[0]}/").get_data(as_text=True)
    nav = re.search(r'<div class="sitenav-tabs">(.*?)</div>', page, re.S).group(1)
    names = re.findall(r">([^<]+)</a>", nav)
    assert names == [
        "Dashboard",
        "Live",
        "Funnels",
        "Journeys",
        "Quests",
        "API keys",
        "Share",
        "Privacy",
        "Members",
        "Audit log",
    ]  # an owner's tabs; weaker roles see fewer (tests/test_access_matrix.py)


def test_a_filter_value_is_escaped_in_its_chip_and_kept_whole_in_links(client, site):
    site_id = site[0]
    value = '<b>"x"</b>&y=1#z'
    page = client.get(
        f"/sites/{site_id}/", query_string={"period": "today", "filter": f"page=={value}"}
    ).get_data(as_text=True)
    assert "<b>" not in page and "Page is &lt;b&gt;&#34;x&#34;&lt;/b&gt;&amp;y=1#z" in page
    metric = re.search(r'<a href="([^"]+metric=events[^"]*)"', page).group(1)
    query = parse_qs(urlsplit(metric.replace("&amp;", "&")).query)
    assert query["filter"] == [f"page=={value}"]


@pytest.mark.parametrize("period", ["today", "yesterday", "7d", "month", "12mo", "all"])
def test_every_period_draws_with_and_without_a_filter(client, site, period):
    site_id, ingest, headers = site
    _seed(ingest, headers)
    for extra in ({}, {"filter": "source==Google"}):
        answer = client.get(f"/sites/{site_id}/", query_string={"period": period, **extra})
        assert answer.status_code == 200, (period, extra)
        page = answer.get_data(as_text=True)
        assert page.count('class="chart-col') >= 1 and "data-chart" in page


def test_a_large_range_answers_first_and_sends_its_panels_apart(client, site, monkeypatch):
    site_id, ingest, headers = site
    _seed(ingest, headers)
    monkeypatch.setattr(dashboard, "PANEL_INLINE_EVENTS", 3)  # 5 events: a "large" range
    page = client.get(f"/sites/{site_id}/?period=today&sources=source").get_data(as_text=True)
    assert 'data-panel="sources"' not in page
    url = re.search(r'data-panels-url="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert urlsplit(url).path == f"/sites/{site_id}/panels"
    grid = client.get(url)
    assert grid.status_code == 200
    text = grid.get_data(as_text=True)
    assert "<html" not in text and 'data-panel="sources"' in text
    assert 'data-value="Google"' in text and 'data-panel="goals"' in text
    assert client.get(f"/sites/{site_id}/panels?filter=planet==x").status_code == 400
