"""Writing an Accumulator's increments into the rollup tables and visitor sketches.

Counts and amounts are added to the stored rows (INSERT … ON CONFLICT DO UPDATE); a
sketch is merged with the stored one by the caller, which read it beforehand
(``stored_sketches``), and replaces it.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import select

from ...sql.connections import dialect_insert
from .. import settled, sketches
from .accumulate import Accumulator
from .models import HourlyPage, HourlyProperty, HourlyRule, HourlyTotals, VisitorSketch


def _add_to_existing(table, keys: list[str], counts: list[str], dialect: str):
    """INSERT … ON CONFLICT DO UPDATE that adds the counts to an existing row."""
    statement = dialect_insert(table.__table__, dialect)
    return statement.on_conflict_do_update(
        index_elements=keys,
        set_={name: table.__table__.c[name] + statement.excluded[name] for name in counts},
    )


_MONEY = ["revenue_units", "revenue_rest"]
_TOTALS = ["events", "pageviews", "clicks", "custom", "conversions", *_MONEY, "without_visitor"]


def write(connection, acc: Accumulator, stored_sketches: dict, dialect: str) -> None:
    """Add an accumulator's rollups to the tables and store its merged sketches (and move
    the settled generation on if settled buckets change: see analytics.settled)."""
    if acc.totals and settled.touches_settled(min(hour for _site, hour in acc.totals)):
        settled.bump(connection)
    if acc.totals:
        connection.execute(
            _add_to_existing(HourlyTotals, ["site_id", "hour"], _TOTALS, dialect),
            [
                {"site_id": s, "hour": h, **dict(zip(_TOTALS, v, strict=True))}
                for (s, h), v in acc.totals.items()
            ],
        )
    if acc.rules:
        names = ["conversions", *_MONEY]
        connection.execute(
            _add_to_existing(HourlyRule, ["site_id", "hours", "hour", "name"], names, dialect),
            [
                {"site_id": s, "hours": k, "hour": h, "name": n, **dict(zip(names, v, strict=True))}
                for (s, k, h, n), v in acc.rules.items()
            ],
        )
    if acc.pages:
        connection.execute(
            _add_to_existing(
                HourlyPage, ["site_id", "hours", "hour", "page_path"], ["events"], dialect
            ),
            [
                {"site_id": s, "hours": k, "hour": h, "page_path": p, "events": v}
                for (s, k, h, p), v in acc.pages.items()
            ],
        )
    if acc.properties:
        names = ["events", "conversions", *_MONEY]
        connection.execute(
            _add_to_existing(
                HourlyProperty, ["site_id", "key", "hours", "hour", "value"], names, dialect
            ),
            [
                {
                    "site_id": s,
                    "key": k,
                    "hours": n,
                    "hour": h,
                    "value": v,
                    **dict(zip(names, c, strict=True)),
                }
                for (s, k, n, h, v), c in acc.properties.items()
            ],
        )
    filled = acc.sketches_by_key()
    if filled:
        statement = dialect_insert(VisitorSketch.__table__, dialect)
        statement = statement.on_conflict_do_update(
            index_elements=["site_id", "hours", "dim", "start"],
            set_={"sketch": statement.excluded.sketch},
        )
        connection.execute(
            statement,
            [
                {
                    "site_id": s,
                    "hours": n,
                    "dim": d,
                    "start": t,
                    "sketch": sketches.combine(stored_sketches.get((s, n, d, t)), fresh),
                }
                for (s, n, d, t), fresh in filled.items()
            ],
        )


def stored_sketches(connection, keys: list[tuple]) -> dict:
    """The stored bytes of the sketches with these keys (site, hours, dim, start).

    One query per site and span over the keys' time range and dimensions (a list of row
    values in IN was planned badly by PostgreSQL: about a second per fold).
    """
    wanted = set(keys)
    groups: dict[tuple[int, int], list] = defaultdict(list)
    for site, hours, dim, start in keys:
        groups[(site, hours)].append((dim, start))
    found: dict = {}
    s = VisitorSketch
    for (site, hours), members in groups.items():
        dims = sorted({dim for dim, _ in members})
        low, high = min(t for _, t in members), max(t for _, t in members)
        for offset in range(0, len(dims), 500):
            rows = connection.execute(
                select(s.dim, s.start, s.sketch).where(
                    s.site_id == site,
                    s.hours == hours,
                    s.dim.in_(dims[offset : offset + 500]),
                    s.start >= low,
                    s.start <= high,
                )
            )
            for dim, start, data in rows:
                if (site, hours, dim, start) in wanted:
                    found[(site, hours, dim, start)] = data
    return found
