"""The chart's buckets: events, conversions and revenue from the rollups, with visitors."""

from __future__ import annotations

import bisect
from datetime import datetime
from typing import Any

from sqlalchemy import String, select, type_coerce

from ...extensions import db
from .. import settled
from ..ranges import Bucket, DateRange
from ..rollups.models import (
    HourlyTotals,
)
from .model import SeriesPoint
from .spans import as_stored, money_micros, raw_acc, split
from .visitors import ExactVisitors, bucket_visitor_estimates


def hourly_prefix(site_id: int, start: datetime, end: datetime):
    """Sorted hours of [start, end) with running sums of events, conversions and revenue."""
    t = HourlyTotals
    hour: Any = t.hour
    if db.engine.dialect.name == "sqlite":  # keep the stored text: no datetime per row
        hour = type_coerce(t.hour, String)
    rows = db.session.execute(
        select(hour, t.events, t.conversions, t.revenue_units, t.revenue_rest)
        .where(t.site_id == site_id, t.hour >= start, t.hour < end)
        .order_by(t.hour)
    ).all()
    hours = [row[0] for row in rows]
    sums = [(0, 0, 0)]
    for _hour, events, conversions, units, rest in rows:
        last = sums[-1]
        sums.append((last[0] + events, last[1] + conversions, last[2] + money_micros(units, rest)))
    return hours, sums


def series_of(
    site_id: int, rng: DateRange, buckets: list[Bucket], exact: ExactVisitors | None, gen: int
) -> list[SeriesPoint]:
    """The chart's buckets with events, visitors, conversions and revenue.

    Estimated buckets that end before the settled boundary come from the cache (see
    analytics.settled); the others are read.
    """
    if exact is not None:
        return bucket_points(site_id, buckets, [len(ids) for ids in exact.buckets])
    cut = settled.boundary()
    keys = [(site_id, gen, "bucket", b.label, b.start_utc, b.end_utc) for b in buckets]
    found: list[Any] = [
        settled.cache.get(key) if b.end_utc <= cut else None
        for key, b in zip(keys, buckets, strict=True)
    ]
    todo = [index for index, point in enumerate(found) if point is None]
    if todo:
        missing = [buckets[index] for index in todo]
        points = bucket_points(site_id, missing, bucket_visitor_estimates(site_id, missing))
        for index, point in zip(todo, points, strict=True):
            found[index] = point
            if buckets[index].end_utc <= cut:
                settled.cache.put(keys[index], point)
    return found


def bucket_points(site_id: int, buckets: list[Bucket], visitors: list[int]) -> list[SeriesPoint]:
    """The buckets' events, conversions and revenue (from the rollups), with their visitors."""
    if not buckets:
        return []
    hours, sums = hourly_prefix(site_id, buckets[0].start_utc, buckets[-1].end_utc)
    points = []
    for bucket, seen in zip(buckets, visitors, strict=True):
        inner, edges = split(bucket.start_utc, bucket.end_utc)
        figures = [0, 0, 0]
        if inner:
            low = bisect.bisect_left(hours, as_stored(inner[0]))
            high = bisect.bisect_left(hours, as_stored(inner[1]))
            figures = [sums[high][i] - sums[low][i] for i in range(3)]
        if edges:
            for values in raw_acc(site_id, edges).totals.values():
                figures[0] += values[0]
                figures[1] += values[4]
                figures[2] += money_micros(values[5], values[6])
        points.append(SeriesPoint(bucket.label, figures[0], seen, figures[1], figures[2]))
    return points
