"""Visitors per chart bucket in zones with half-hour offsets equal an exact count, also when
estimated (the buckets' half-hour edges are read from raw events, test events excluded)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from datalook.extensions import db
from datalook.models import Event
from tests.analytics_helpers import Sample, store
from tests.test_analytics_reports import _owner_site


def _local_buckets(
    points: list[dict], tz: ZoneInfo, hourly: bool
) -> list[tuple[datetime, datetime]]:
    """The UTC intervals of the series' buckets, from their local start labels."""
    out = []
    for point in points:
        start = datetime.strptime(point["start"], "%Y-%m-%dT%H:%M%z" if hourly else "%Y-%m-%d")
        start = start.replace(tzinfo=tz) if start.tzinfo is None else start
        end = start + (timedelta(hours=1) if hourly else timedelta(days=1))
        if not hourly:
            end = end.replace(tzinfo=tz)
        out.append((start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))))
    return out


@pytest.mark.parametrize("zone_name", ["Asia/Kolkata", "America/St_Johns", "Asia/Kathmandu"])
@pytest.mark.parametrize(
    ("first", "last"), [("2026-05-11", "2026-05-11"), ("2026-05-01", "2026-05-20")]
)
def test_bucket_visitors_equal_a_count_from_the_events(make_app, zone_name, first, last):
    app = make_app(ANALYTICS_EXACT_EVENTS=0)  # every figure from the sketches
    client = app.test_client()
    site_id = _owner_site(client, app, zone_name)
    rng = random.Random(f"{zone_name} {first}")  # a str seed is the same in every run
    start, end = datetime(2026, 4, 29), datetime(2026, 5, 22)
    span = int((end - start).total_seconds())
    samples = [
        Sample(start + timedelta(seconds=rng.randrange(span)), "pageview", f"v{rng.randrange(300)}")
        for _ in range(1500)
    ]
    with app.app_context():
        store(site_id, samples)
        # Test events (a test key's) at the same times, by visitors seen nowhere else.
        test_samples = [
            Sample(s.at + timedelta(minutes=1), "pageview", f"test{i}")
            for i, s in enumerate(samples[:300])
        ]
        store(site_id, test_samples)
        users = [f"u:{s.user}" for s in test_samples]
        db.session.execute(db.update(Event).where(Event.visitor_id.in_(users)).values(is_test=True))
        db.session.commit()
    body = client.get(f"/sites/{site_id}/stats.json?from={first}&to={last}").get_json()
    tz = ZoneInfo(zone_name)
    hourly = first == last
    buckets = _local_buckets(body["series"], tz, hourly)
    utc = ZoneInfo("UTC")
    for point, (a, b) in zip(body["series"], buckets, strict=True):
        want = {s.user for s in samples if a <= s.at.replace(tzinfo=utc) < b}
        assert point["visitors"] == len(want), (point["start"], point["visitors"], len(want))
