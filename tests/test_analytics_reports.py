"""Reports over date ranges: figures from the summaries equal figures computed from the events.

Each case stores events around a range's edges (local midnights, DST changes, sub-hour
zones) and at random, then compares stats.json with an independent computation.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from datalook.analytics.rollups import fold as summaries
from datalook.extensions import db
from datalook.models import Site
from tests.analytics_helpers import Sample, expected, random_samples, store
from tests.conftest import add_site, sign_up

# (zone, first day, last day): DST changes in Berlin (29 March and 25 October 2026),
# sub-hour offsets (Kolkata +5:30, St John's −3:30/−2:30), long ranges (weeks, months).
CASES = [
    ("UTC", date(2026, 10, 1), date(2026, 10, 30)),
    ("Europe/Berlin", date(2026, 10, 25), date(2026, 10, 25)),
    ("Europe/Berlin", date(2026, 3, 29), date(2026, 3, 29)),
    ("Europe/Berlin", date(2026, 3, 26), date(2026, 4, 1)),
    ("Europe/Berlin", date(2026, 10, 24), date(2026, 10, 25)),
    ("Asia/Kolkata", date(2026, 5, 10), date(2026, 5, 12)),
    ("Asia/Kolkata", date(2026, 5, 11), date(2026, 5, 11)),
    ("America/St_Johns", date(2026, 3, 7), date(2026, 3, 9)),
    ("America/New_York", date(2026, 1, 1), date(2026, 6, 30)),
    ("Pacific/Auckland", date(2025, 1, 1), date(2026, 10, 31)),
]


def _midnight(day: date, tz: ZoneInfo) -> datetime:
    """Local midnight of `day` as naive UTC, computed without the ranges module."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def _edge_samples(tz: ZoneInfo, first: date, last: date) -> list[Sample]:
    """Events exactly on, just inside and just outside both bounds of the range."""
    start, end = _midnight(first, tz), _midnight(last + timedelta(days=1), tz)
    tick = timedelta(microseconds=1)
    return [
        Sample(start, "success", "edge-in", "paid-customer", "/", 5_000_000),
        Sample(start - tick, "success", "edge-out", "paid-customer", "/", 7_000_000),
        Sample(end - tick, "pageview", "edge-in-2"),
        Sample(end, "pageview", "edge-out-2"),
        Sample(start + timedelta(minutes=30), "click", None, page="/pricing"),
    ]


def _samples(zone_name: str, first: date, last: date, seed: int) -> list[Sample]:
    """Edge events and random ones from two days before to two days after the range."""
    tz = ZoneInfo(zone_name)
    rng = random.Random(seed)
    start = _midnight(first, tz) - timedelta(days=2)
    end = _midnight(last + timedelta(days=3), tz)
    n = min(400, 40 * ((last - first).days + 5))
    return _edge_samples(tz, first, last) + random_samples(rng, start, end, n)


def _owner_site(client, app, zone_name: str, currency: str = "USD") -> int:
    """Sign up, add a site and set its zone and currency; return the site id."""
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        site = db.session.get(Site, site_id)
        site.timezone, site.currency = zone_name, currency
        db.session.commit()
    return site_id


def _check(body: dict, want: dict, exact: bool) -> None:
    """Compare a stats.json body with the independent figures."""
    totals = dict(body["totals"])
    assert totals.pop("visitors_exact") is exact
    got_visitors = totals.pop("visitors")
    want_totals = dict(want["totals"])
    want_visitors = want_totals.pop("visitors")
    assert totals == want_totals
    _close(got_visitors, want_visitors, exact)
    rules = {r["name"]: r for r in body["rules"]}
    for name, (conversions, converters, revenue) in want["rules"].items():
        assert (rules[name]["conversions"], rules[name]["revenue"]) == (conversions, revenue)
        _close(rules[name]["converters"], converters, exact)
    assert all(r["conversions"] == 0 for n, r in rules.items() if n not in want["rules"])
    pages = {p["page_path"]: p for p in body["pages"]}
    assert {path: p["events"] for path, p in pages.items()} == {
        path: events for path, (events, _) in want["pages"].items()
    }
    for path, (_, seen) in want["pages"].items():
        _close(pages[path]["visitors"], seen, exact)
    series = {p["start"]: p for p in body["series"] if p["events"]}
    assert set(series) == set(want["series"])
    for label, (events, seen, conversions, revenue) in want["series"].items():
        point = series[label]
        assert (point["events"], point["conversions"], point["revenue"]) == (
            events,
            conversions,
            revenue,
        )
        _close(point["visitors"], seen, exact)


def _close(got: int, want: int, exact: bool) -> None:
    """Exact counts must match; HyperLogLog estimates must be within 1% (or 1)."""
    if exact:
        assert got == want
    else:
        assert abs(got - want) <= max(1, want * 0.01), (got, want)


@pytest.mark.parametrize(("zone_name", "first", "last"), CASES)
@pytest.mark.parametrize("exact", [True, False], ids=["exact", "sketches"])
def test_stats_equal_figures_computed_from_the_events(make_app, zone_name, first, last, exact):
    app = make_app(**({} if exact else {"ANALYTICS_EXACT_EVENTS": 0}))
    client = app.test_client()
    site_id = _owner_site(client, app, zone_name)
    samples = _samples(zone_name, first, last, seed=hash((zone_name, first)) & 0xFFFF)
    with app.app_context():
        store(site_id, samples)
    answer = client.get(
        f"/sites/{site_id}/stats.json?from={first.isoformat()}&to={last.isoformat()}"
    )
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert (body["from"], body["to"], body["timezone"]) == (
        first.isoformat(),
        last.isoformat(),
        zone_name,
    )
    tz = ZoneInfo(zone_name)
    _check(body, expected(samples, tz, first, last), exact)
    days = (last - first).days + 1
    previous_first = first - timedelta(days=days)
    want_previous = expected(samples, tz, previous_first, first - timedelta(days=1))["totals"]
    previous = dict(body["previous"])
    assert previous.pop("visitors_exact") is exact
    _close(previous.pop("visitors"), want_previous.pop("visitors"), exact)
    assert previous == want_previous


def test_dst_days_have_23_and_25_hour_buckets(client, app):
    site_id = _owner_site(client, app, "Europe/Berlin")
    spring = client.get(f"/sites/{site_id}/stats.json?from=2026-03-29&to=2026-03-29").get_json()
    autumn = client.get(f"/sites/{site_id}/stats.json?from=2026-10-25&to=2026-10-25").get_json()
    assert len(spring["series"]) == 23 and len(autumn["series"]) == 25
    assert [p["start"] for p in autumn["series"]][2:4] == [
        "2026-10-25T02:00+0200",
        "2026-10-25T02:00+0100",
    ]


def test_changing_the_zone_recuts_days_without_touching_the_summaries(client, app):
    site_id = _owner_site(client, app, "UTC")
    # 23:30 UTC on 1 June: 1 June in UTC, 2 June in Berlin (UTC+2).
    with app.app_context():
        store(site_id, [Sample(datetime(2026, 6, 1, 23, 30), "pageview", "u1")])
    url = f"/sites/{site_id}/stats.json?from=2026-06-02&to=2026-06-02"
    assert client.get(url).get_json()["totals"]["events"] == 0
    with app.app_context():
        db.session.get(Site, site_id).timezone = "Europe/Berlin"
        db.session.commit()
    assert client.get(url).get_json()["totals"]["events"] == 1


def test_revenue_sums_stay_exact(client, app):
    site_id = _owner_site(client, app, "UTC", "EUR")
    at = datetime(2026, 6, 1, 12)
    # 0.1 + 0.2 as floats is 0.30000000000000004; ten maximal values overflow float precision.
    values = [100_000, 200_000, *([10**18] * 10), 1]
    with app.app_context():
        store(site_id, [Sample(at, "success", "u", "big", micros=v) for v in values])
    body = client.get(f"/sites/{site_id}/stats.json?from=2026-06-01&to=2026-06-01").get_json()
    assert body["totals"]["revenue"] == "10000000000000.300001"
    assert body["currency"] == "EUR"
    assert body["rules"][0]["revenue"] == "10000000000000.300001"


def test_late_events_land_in_their_own_hour(client, app):
    site_id = _owner_site(client, app, "UTC")
    day = datetime(2026, 6, 1, 10)
    with app.app_context():
        store(site_id, [Sample(day, "pageview", "u1")])
    url = f"/sites/{site_id}/stats.json?from=2026-05-28&to=2026-06-01"
    assert client.get(url).get_json()["totals"]["events"] == 1
    with app.app_context():  # a late event, stored after the first fold
        store(site_id, [Sample(datetime(2026, 5, 29, 8), "success", "u2", "late", micros=10**6)])
    body = client.get(url).get_json()
    assert body["totals"]["events"] == 2 and body["totals"]["visitors"] == 2
    assert {p["start"]: p["events"] for p in body["series"]}["2026-05-29"] == 1


def test_rebuild_equals_the_incremental_fold(client, app):
    site_id = _owner_site(client, app, "Europe/Berlin")
    rng = random.Random(7)
    start = datetime(2026, 9, 1)
    with app.app_context():
        store(site_id, random_samples(rng, start, start + timedelta(days=10), 300))
    url = f"/sites/{site_id}/stats.json?from=2026-09-01&to=2026-09-12"
    before = client.get(url).get_json()
    with app.app_context():
        store(site_id, random_samples(rng, start, start + timedelta(days=10), 50))
        # Rebuilt while 50 events wait unfolded: they are folded once, afterwards.
        summaries.rebuild_site(db.engine, app.instance_path, site_id)
    after = client.get(url).get_json()
    assert after["totals"]["events"] == before["totals"]["events"] + 50
    with app.app_context():
        summaries.rebuild_site(db.engine, app.instance_path, site_id)
    assert client.get(url).get_json() == after
