"""Figures computed straight from the raw events, by scanning them: the tests' independent
oracle for what the reports (datalook/analytics) compute from their summaries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, distinct, func, literal_column, select

from datalook.extensions import db
from datalook.ingest.schema import VALUE_SCALE, format_value
from datalook.models import Event, SuccessRule

_WHOLE_UNITS: ColumnElement[int] = literal_column(f"events.success_value_micros / {VALUE_SCALE}")
_REMAINDER: ColumnElement[int] = literal_column(f"events.success_value_micros % {VALUE_SCALE}")


@dataclass(frozen=True)
class Overview:
    """Headline figures for one site."""

    events: int
    conversions: int
    visitors: int
    revenue: float | int


@dataclass(frozen=True)
class RuleStats:
    """One success rule with its figures."""

    name: str
    first_seen_at: datetime
    last_seen_at: datetime | None
    count: int


def overview(site_id: int) -> Overview:
    """Count events, conversions, distinct visitors and exact revenue."""
    total, visitors = db.session.execute(
        select(func.count(), func.count(distinct(Event.visitor_id))).where(
            Event.site_id == site_id, Event.is_test.is_(False)
        )
    ).one()
    # Summed as whole units and remainders (integer division truncates on both databases):
    # each sum stays far inside 64 bits, where one sum of millionths could overflow in SQLite.
    conversions, units, rest = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(_WHOLE_UNITS), 0),
            func.coalesce(func.sum(_REMAINDER), 0),
        ).where(Event.site_id == site_id, Event.event_name == "success", Event.is_test.is_(False))
    ).one()
    revenue = int(units) * VALUE_SCALE + int(rest)
    return Overview(total, conversions, visitors, format_value(revenue) or 0)


def success_rules(site_id: int) -> list[RuleStats]:
    """Return each success rule with its first seen, last seen and count."""
    counts = (
        select(Event.name, func.count().label("n"), func.max(Event.occurred_at).label("last"))
        .where(Event.site_id == site_id, Event.event_name == "success", Event.is_test.is_(False))
        .group_by(Event.name)
        .subquery()
    )
    rows = db.session.execute(
        select(SuccessRule.name, SuccessRule.first_seen_at, counts.c.last, counts.c.n)
        .outerjoin(counts, counts.c.name == SuccessRule.name)
        .where(SuccessRule.site_id == site_id, SuccessRule.listed())
        .order_by(SuccessRule.first_seen_at)
    ).all()
    return [RuleStats(name, first, last, n or 0) for name, first, last, n in rows]


def recent_events(site_id: int, limit: int = 20) -> list[Event]:
    """Return the newest events of a site."""
    return list(
        db.session.scalars(
            select(Event)
            .where(Event.site_id == site_id, Event.is_test.is_(False))
            .order_by(Event.id.desc())
            .limit(limit)
        )
    )
