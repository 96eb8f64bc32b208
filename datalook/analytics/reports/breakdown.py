"""The breakdown of one property key: its top values' events, conversions and revenue."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select

from ...extensions import db
from ...models import Site
from ..ranges import DateRange
from ..rollups import accumulate as summaries
from ..rollups.models import (
    HourlyProperty,
)
from .model import BreakdownRow
from .spans import covering, money_micros, raw_acc

TOP_VALUES = 20


def breakdown(site: Site, rng: DateRange, key: str) -> list[BreakdownRow]:
    """The top values of one property key: events, conversions, revenue."""
    key = key[: summaries.MAX_KEY]
    p = HourlyProperty
    covered, edges = covering(p, rng.start_utc, rng.end_utc)
    figures: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    if covered is not None:
        rows = db.session.execute(
            select(
                p.value,
                func.sum(p.events),
                func.sum(p.conversions),
                func.sum(p.revenue_units),
                func.sum(p.revenue_rest),
            )
            .where(p.site_id == site.id, p.key == key, covered)
            .group_by(p.value)
        )
        for value, count, conversions, units, rest in rows:
            figures[value] = [int(count), int(conversions), money_micros(units, rest)]
    if edges:
        for (_s, name, span, _h, value), c in raw_acc(site.id, edges).properties.items():
            if name == key and span == 1:
                row = figures[value]
                row[0] += c[0]
                row[1] += c[1]
                row[2] += money_micros(c[2], c[3])
    top = sorted(figures.items(), key=lambda item: (-item[1][0], item[0]))[:TOP_VALUES]
    return [BreakdownRow(value, *numbers) for value, numbers in top]


def property_keys(site: Site, limit: int = 50) -> list[str]:
    """Property keys seen on the site's events (for the breakdown's choice).

    One index seek per key (a skip scan): DISTINCT read every summary row of the site.
    """
    keys: list[str] = []
    p = HourlyProperty
    while len(keys) < limit:
        after = select(func.min(p.key)).where(p.site_id == site.id)
        if keys:
            after = after.where(p.key > keys[-1])
        found = db.session.scalar(after)
        if found is None:
            break
        keys.append(found)
    return keys
