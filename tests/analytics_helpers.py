"""Helpers of the analytics tests: stored events, and their figures computed independently.

The expected figures are computed here from the list of events, in plain Python with
zoneinfo, without the summaries, the ranges module's UTC intervals or SQL.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from datalook.extensions import db
from datalook.models import Event, SuccessRule

RULES = ("paid-customer", "trial-started", "upgrade")
PAGES = ("/", "/pricing", "/checkout/success", "/docs/start")
KINDS = ("pageview", "click", "custom", "success")


@dataclass
class Sample:
    """One event as the tests see it (naive UTC time)."""

    at: datetime
    kind: str = "pageview"
    user: str | None = None
    name: str | None = None
    page: str = "/"
    micros: int | None = None
    properties: dict | None = None
    serial: int = field(default=0)

    @property
    def visitor_id(self) -> str:
        """As ingestion stores it: u:<user>, else a per-event anonymous id."""
        return f"u:{self.user}" if self.user is not None else f"a:{self.serial:020d}"


def store(site_id: int, samples: list[Sample]) -> None:
    """Insert events as ingestion does (rows and success rules), inside an app context."""
    import json

    now = datetime.now(UTC).replace(tzinfo=None)
    for index, sample in enumerate(samples):
        sample.serial = sample.serial or random.getrandbits(60) + index
    db.session.execute(
        Event.__table__.insert(),
        [
            {
                "site_id": site_id,
                "event_name": s.kind,
                "name": s.name,
                "page_path": s.page,
                "visitor_id": s.visitor_id,
                "success_user_id": s.user,
                "success_value_micros": s.micros,
                "properties": json.dumps(s.properties) if s.properties else None,
                "occurred_at": s.at,
                "received_at": now,
            }
            for s in samples
        ],
    )
    known = set(
        db.session.scalars(db.select(SuccessRule.name).where(SuccessRule.site_id == site_id))
    )
    for s in samples:
        if s.kind == "success" and s.name and s.name not in known:
            known.add(s.name)
            db.session.add(SuccessRule(site_id=site_id, name=s.name, first_seen_at=s.at))
    db.session.commit()


def random_samples(rng: random.Random, start: datetime, end: datetime, n: int) -> list[Sample]:
    """n events spread over [start, end) with users, kinds, rules, values and properties."""
    span = (end - start).total_seconds()
    out = []
    for _ in range(n):
        kind = rng.choice(KINDS)
        user = rng.choice([None, *[f"user{i}" for i in range(12)]])
        success = kind == "success"
        out.append(
            Sample(
                at=start + timedelta(seconds=rng.random() * span),
                kind=kind,
                user=user,
                name=rng.choice(RULES) if success else None,
                page=rng.choice(PAGES),
                micros=rng.choice([None, 0, 990_000, 19_990_000, 1_000_001]) if success else None,
                properties=rng.choice([None, {"plan": rng.choice(["free", "pro"])}, {"n": 3}]),
            )
        )
    return out


def local(sample: Sample, tz: ZoneInfo) -> datetime:
    """The sample's local wall time."""
    return sample.at.replace(tzinfo=UTC).astimezone(tz)


def expected(samples: list[Sample], tz: ZoneInfo, first: date, last: date) -> dict:
    """Totals, rules, pages and per-local-day or per-local-hour series of the range."""
    inside = [s for s in samples if first <= local(s, tz).date() <= last]
    visitors = {s.visitor_id for s in inside if s.user is not None}
    successes = [s for s in inside if s.kind == "success"]
    rules: dict = defaultdict(lambda: {"conversions": 0, "converters": set(), "micros": 0})
    for s in successes:
        rule = rules[s.name]
        rule["conversions"] += 1
        rule["micros"] += s.micros or 0
        if s.user is not None:
            rule["converters"].add(s.visitor_id)
    pages: dict = defaultdict(lambda: [0, set()])
    for s in inside:
        pages[s.page][0] += 1
        if s.user is not None:
            pages[s.page][1].add(s.visitor_id)
    days = (last - first).days + 1
    series: dict = defaultdict(lambda: [0, set(), 0, 0])
    for s in inside:
        moment = local(s, tz)
        day = moment.date()
        if days <= 2:
            label = moment.replace(minute=0, second=0, microsecond=0).strftime("%Y-%m-%dT%H:%M%z")
        elif days <= 90:
            label = day.isoformat()
        elif days <= 366:  # weeks from Monday; the first may be cut by the range
            label = max(first, day - timedelta(days=day.weekday())).isoformat()
        else:
            label = max(first, day.replace(day=1)).isoformat()
        point = series[label]
        point[0] += 1
        if s.user is not None:
            point[1].add(s.visitor_id)
        if s.kind == "success":
            point[2] += 1
            point[3] += s.micros or 0
    return {
        "totals": {
            "events": len(inside),
            "pageviews": sum(s.kind == "pageview" for s in inside),
            "clicks": sum(s.kind == "click" for s in inside),
            "custom": sum(s.kind == "custom" for s in inside),
            "conversions": len(successes),
            "visitors": len(visitors),
            "revenue": money(sum(s.micros or 0 for s in successes)),
            "events_without_visitor": sum(s.user is None for s in inside),
            # The samples are a backend's events: no browser page view, so no visit (the
            # visit figures have their own count from scratch, test_visits_oracle.py).
            "visits": 0,
            "views_per_visit": 0.0,
            "bounce_rate": 0.0,
            "visit_duration_s": 0.0,
        },
        "rules": {
            name: (r["conversions"], len(r["converters"]), money(r["micros"]))
            for name, r in rules.items()
        },
        "pages": {path: (count, len(seen)) for path, (count, seen) in pages.items()},
        "series": {
            label: (p[0], len(p[1]), p[2], money(p[3])) for label, p in series.items() if p[0]
        },
    }


def money(micros: int) -> str:
    """Millionths as the decimal string of the JSON contract (two digits at least)."""
    value = Decimal(micros) / 10**6
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"
