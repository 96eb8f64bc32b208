"""attribution.json computed over the columnar copy equals the computation it replaced (the
events read through SQLAlchemy, visits cut in Python), kept here as the oracle: random
events (page views, other events and successes of browsers, backends and visitors without
an id, test keys' events, acquisition values NULL, "", direct or named, gaps at and around
GAP), random links applied, then random rules, models, dimensions, lookbacks, ranges, time
zones and filters. On SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from datalook.acquisition import sources
from datalook.acquisition.dimensions import NONE, NOT_RECORDED, Filter, parse_filter
from datalook.analytics import identity
from datalook.analytics.ranges import DateRange
from datalook.analytics.reports import attribution
from datalook.analytics.reports.attribution import split
from datalook.analytics.reports.raw_events import range_events, stored_value
from datalook.analytics.sessions import GAP
from datalook.analytics.visitor_ids import is_visitor
from datalook.extensions import db
from datalook.ingest import links
from datalook.models import (
    ACQUISITION_LENGTHS,
    LINK_FROM_BROWSER,
    LINK_FROM_SERVER,
    Event,
    Site,
    User,
)
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

START = datetime(2026, 5, 1)
SOURCES = [
    ("Newsletter", "Email", "may"),
    ("Google", "Organic Search", ""),
    ("", "Direct", ""),
    (None, None, None),
    ("Direct / None", "Direct", ""),
    (NOT_RECORDED, "Direct", None),
    (NOT_RECORDED, "(none)", "(none)"),
    ("Facebook", "Paid Social", "spring"),
]
RULES = ["paid", "trial", "upgrade"]
VALUES = [49_000_000, 10_010_000, 30_000, 1_000_001, -20_000, 0, None]
PAGES = ["/", "/pricing", "/signup", "/app"]
# Minutes between a person's events: most on a grid of half hours (so that visits begin
# exactly GAP apart, or exactly a lookback before a success), some just off it.
STEPS = [0, 1, 29, 30, 30, 30, 31, 60, 60, 90, 180, 720, 1440, 1440, 2160, 2880]
FILTERS = [
    "rule==paid",
    "rule!=trial",
    "source==Google",
    "source!=Newsletter",
    "source==(none)",
    "campaign==(not recorded)",
    "channel=~mail",
    "country==DE",
    "country!=(not recorded)",
    "page==/app",
    "entry_page==/",
    "exit_page=~pri",
    "prop:plan==pro",
    "prop:plan!=(none)",
]


# ---- The computation that attribution.json replaced (the oracle) ----------------------

_SOURCE = tuple(ACQUISITION_LENGTHS).index("source")
_DIRECT = (None, NOT_RECORDED, sources.DIRECT)


@dataclass(frozen=True)
class Touch:
    """A visit: when its first page view was, its value of the dimension, whether direct."""

    at: datetime
    value: str
    direct: bool


def old_touches(site_id, people, start, end, dimension) -> dict[str, list[Touch]]:
    """Each person's visits whose first page view is in [start, end], in time order."""
    index = tuple(ACQUISITION_LENGTHS).index(dimension)
    columns = [getattr(Event, name) for name in ACQUISITION_LENGTHS]
    found: dict[str, list[Touch]] = defaultdict(list)
    for offset in range(0, len(people), 500):
        query = (
            select(Event.visitor_id, Event.occurred_at, *columns)
            .where(Event.site_id == site_id, Event.counted(), Event.event_name == "pageview")
            .where(Event.visitor_id.in_(people[offset : offset + 500]))
            .where(Event.occurred_at >= start - timedelta(days=1), Event.occurred_at <= end)
            .order_by(Event.visitor_id, Event.occurred_at, Event.id)
        )
        previous: dict[str, datetime] = {}
        for person, at, *values in db.session.execute(query):
            last = previous.get(person)
            previous[person] = at
            if last is not None and at - last <= GAP:
                continue
            if at >= start:
                value = stored_value(values[index])
                direct = stored_value(values[_SOURCE]) in _DIRECT
                found[person].append(Touch(at, NONE if value is None else value, direct))
    return found


def old_credited(model: str, visits: list[Touch]) -> list[tuple[Touch, Fraction]]:
    """The visits a success is credited to, with their shares."""
    if model == "first":
        return [(visits[0], Fraction(1))]
    if model == "last":
        others = [visit for visit in visits if not visit.direct]
        return [((others or visits)[-1], Fraction(1))]
    return [(visit, Fraction(1, len(visits))) for visit in visits]


def old_successes(site_id, rng, rule, filters) -> list[tuple[str, datetime, int | None]]:
    """The counted successes of the range (of `rule`) that pass the filters."""
    if filters:
        return [
            (event.visitor, event.at, event.micros)
            for event in range_events(site_id, rng.start_utc, rng.end_utc, filters)
            if event.kind == "success" and (rule is None or event.name == rule)
        ]
    query = (
        select(Event.visitor_id, Event.occurred_at, Event.success_value_micros)
        .where(Event.site_id == site_id, Event.counted(), Event.event_name == "success")
        .where(Event.occurred_at >= rng.start_utc, Event.occurred_at < rng.end_utc)
    )
    if rule is not None:
        query = query.where(Event.name == rule)
    return [tuple(row) for row in db.session.execute(query)]


def old_attribution(site_id, rng, rule, model, dimension, lookback, filters, unit):
    """The report as it was computed: (rows, unattributed conversions, unattributed micros)."""
    successes = old_successes(site_id, rng, rule, filters)
    people = sorted({visitor for visitor, _, _ in successes if is_visitor(visitor)})
    start = rng.start_utc - lookback
    visits = old_touches(site_id, people, start, rng.end_utc, dimension) if people else {}
    table: dict[str, list] = defaultdict(lambda: [Fraction(0), set(), 0])
    lost = [0, 0]
    for visitor, at, micros in successes:
        window = [
            visit
            for visit in (visits.get(visitor, []) if is_visitor(visitor) else [])
            if at - lookback <= visit.at <= at
        ]
        if not window:
            lost[0] += 1
            lost[1] += micros or 0
            continue
        shares = old_credited(model, window)
        amounts = split(micros or 0, len(shares), unit)
        for (visit, share), amount in zip(shares, amounts, strict=True):
            entry = table[visit.value]
            entry[0] += share
            entry[1].add(visitor)
            entry[2] += amount
    rows = sorted(
        ((value, c, len(who), money) for value, (c, who, money) in table.items()),
        key=lambda row: (-row[3], -row[1], row[0]),
    )
    return rows, lost[0], lost[1]


# ---- Random events and links -----------------------------------------------------------


def random_events(rng: random.Random, site_id: int) -> tuple[list[dict], list[tuple]]:
    """Random events of a few people (their browsers' anonymous ids, some identified, and
    their backends' successes), of visitors without an id, and of a test key; and links."""
    rows: list[dict] = []
    made: list[tuple[str, str, str]] = []
    for person in range(rng.randint(6, 12)):
        browsers = [f"c:{person:02d}{n:030d}" for n in range(rng.randint(1, 2))]
        for browser in browsers:
            for _ in range(rng.choice([0, 1, 1, 2])):
                origin = rng.choice([LINK_FROM_BROWSER, LINK_FROM_SERVER])
                user = person if rng.random() < 0.7 else rng.randrange(person + 2)
                made.append((browser, f"user{user}", origin))
        at = START + timedelta(minutes=30 * rng.randrange(2 * 24 * 6))
        for _ in range(rng.randint(20, 60)):
            at += timedelta(minutes=rng.choice(STEPS))
            browser = rng.choice(browsers)
            kind = rng.choices(["pageview", "click", "success"], [6, 1, 3])[0]
            if kind == "success":
                who = rng.choice([f"u:user{person}", browser, f"a:{len(rows)}", f"u:user{person}"])
                row = _row(site_id, at, kind, who, browser if who == browser else None, rng)
                row.update(name=rng.choice(RULES), success_value_micros=rng.choice(VALUES))
            else:
                who = rng.choice([browser, browser, f"u:user{person}", f"u:user{person}"])
                who = f"a:{len(rows)}" if rng.random() < 0.1 else who
                sent_by = None if who.startswith("a:") else browser
                row = _row(site_id, at, kind, who, sent_by, rng)
            rows.append(row)
    return rows, made


def _row(site_id: int, at: datetime, kind: str, visitor: str, browser: str | None, rng) -> dict:
    """One event row as ingestion stores it, with random acquisition values."""
    source, channel, campaign = rng.choice(SOURCES)
    return {
        "site_id": site_id,
        "event_name": kind,
        "name": None,
        "page_path": rng.choice(PAGES),
        "visitor_id": visitor,
        "success_user_id": visitor[2:] if visitor.startswith("u:") else None,
        "success_value_micros": None,
        "occurred_at": at,
        "received_at": at,
        "from_browser": browser is not None,
        "anonymous_id": browser,
        "is_test": rng.random() < 0.05,
        "properties": rng.choice([None, '{"plan":"pro"}', '{"plan":"free"}', '{"x":1}']),
        "source": source,
        "channel": channel,
        "campaign": campaign,
        "medium": rng.choice(["", None, "email"]),
        "country": rng.choice(["DE", "US", None, ""]),
    }


def store(rows: list[dict], made: list[tuple], site_id: int) -> None:
    """Insert the events, record the links and apply them."""
    db.session.execute(insert(Event), rows)
    db.session.commit()
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for link in made:
            links.record(cursor, db.engine.dialect, site_id, [link], START)
        raw.commit()
    finally:
        raw.close()
    while identity.apply_pending(db.session(), START + timedelta(days=400)):
        pass


def random_query(rng: random.Random) -> tuple:
    """A random (range, rule, model, dimension, lookback, filters, unit)."""
    first = date(2026, 5, 1) + timedelta(days=rng.randrange(10))
    last = first + timedelta(days=rng.randrange(10))
    tz = ZoneInfo(rng.choice(["UTC", "America/New_York", "Asia/Kolkata"]))
    lookback = timedelta(hours=rng.choice([1, 12, 36, 24 * 2, 24 * 7, 24 * 30, 24 * 90]))
    filters: Sequence[Filter] = [
        parse_filter(text) for text in rng.sample(FILTERS, rng.choice([0, 0, 1, 2]))
    ]
    return (
        DateRange(first, last, tz),
        rng.choice([None, None, None, *RULES]),
        rng.choice(attribution.MODELS),
        rng.choice(attribution.DIMENSIONS),
        lookback,
        tuple(filters),
        rng.choice([10_000, 1_000_000, 1]),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_app(request):
    """An app on each database."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


def _site(name: str) -> int:
    """A new site's id."""
    user = User(email=f"{name}@example.com")
    user.set_password("correct horse battery")
    site = Site(owner=user, domain=f"{name}.example")
    db.session.add_all([user, site])
    db.session.commit()
    return site.id


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_attribution_equals_the_computation_it_replaced(engine_app, monkeypatch, seed):
    monkeypatch.setattr(identity, "LINK_GRACE", timedelta(0))
    rng = random.Random(seed)
    with engine_app.app_context():
        site_id = _site(f"shop{seed}")
        rows, made = random_events(rng, site_id)
        store(rows, made, site_id)
        assert any(row["event_name"] == "success" for row in rows)
        credited_any = False
        for _ in range(16):
            query = random_query(rng)
            report = attribution.attribution(site_id, *query)
            got = [
                (value, c.conversions, c.converters, c.revenue_micros) for value, c in report.rows
            ]
            want, lost, lost_micros = old_attribution(site_id, *query)
            assert got == want, query
            assert (report.unattributed_conversions, report.unattributed_micros) == (
                lost,
                lost_micros,
            ), query
            credited_any = credited_any or bool(got)
        assert credited_any  # the random queries credit some visits
