"""The reports read with SQL from the copy (dimension_rows, filtered) against the same
reports counted event by event in Python (tests/python_reports.py), over random events
and random filters: every dimension and `prop:<key>`, every operator, the sentinels,
values that only casefold matches, property texts that spell a key with escapes, hourly
buckets across a DST change and daily ones, pages past the last row."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import insert

from datalook.acquisition.dimensions import (
    DIMENSIONS,
    NONE,
    NOT_RECORDED,
    OPERATORS,
    Filter,
    parse_filter,
)
from datalook.analytics.ranges import DateRange, zone
from datalook.analytics.reports import dimension_rows as sql_rows
from datalook.analytics.reports import filtered as sql_filtered
from datalook.extensions import db
from datalook.models import Event, Site, SuccessRule
from tests import python_reports as python
from tests.conftest import add_site, sign_up
from tests.test_postgres import pg_app  # noqa: F401 - the fixture, used by name

ZONE = "Europe/Berlin"
# A day range across the spring DST change (hourly buckets: 23 on 2026-03-29) and a
# ten-day one (daily buckets), each with its previous period among the events.
RANGES = [(date(2026, 3, 28), date(2026, 3, 29)), (date(2026, 3, 24), date(2026, 4, 2))]
START = datetime(2026, 3, 13)
HOURS = 24 * 21
ACQUISITION = {
    "source": ["Google", "Newsletter", "(none)", "news.example.org", ""],
    "channel": ["Organic Search", "Email", "Direct", ""],
    "medium": ["", "email", "CPC"],
    "campaign": ["", "Straße", "STRASSE-sale", "(not recorded)"],
    "term": ["", "shoes"],
    "content": ["", "hero"],
    "referrer": ["", "https://www.google.com/", "https://news.example.org/a"],
    "device": ["desktop", "mobile", ""],
    "browser": ["Chrome", "Safari", ""],
    "browser_version": ["", "131"],
    "os": ["Linux", "iOS", ""],
    "os_version": ["", "18.1"],
    "country": ["DE", "TR", ""],
    "region": ["Bayern", "", None],
    "city": ["Gießen", "İstanbul", "München", ""],
}
PAGES = ["/", "/Pricing", "/pricing", "/docs/ß", "/" + "x" * 600, "/ﬁle"]
RULES = ["paid", "trial", "Paid"]
# Stored property texts as they may be written: escaped keys, duplicates, every JSON kind.
PROPERTIES = [
    None,
    "",
    "{}",
    '{"plan": "pro"}',
    '{"plan":"Pro"}',
    '{"\\u0070lan": "spelled with an escape"}',
    '{"plan": "first", "plan": "last"}',
    '{"plan": 12345678901234567890}',
    '{"plan": 2.50, "n": true}',
    '{"plan": null, "n": false}',
    '{"plan": {"a": [1, "b"]}}',
    '{"plan": ["pro"]}',
    '{"plan": "' + "long" * 60 + '"}',
    '{"note": "\\"plan\\" is not a key here"}',
    '{"pl\\"an": "quoted key"}',
    '{"ké y": "Straße"}',
    '{"k\\u00e9 y": "STRASSE"}',
    '{"n": 2}',
]
PROPERTY_KEYS = ["plan", 'pl"an', "ké y", "n", "missing"]
# Filters that only casefold passes, and sentinels that are also stored as text.
CHOSEN = [
    ["campaign=~strasse"],
    ["page=~FILE", "city!=Gießen"],
    ["prop:ké y=~strasse"],
    ["source==(none)"],
    ["campaign==(not recorded)", "rule!=(none)"],
    ["campaign=~(not", "prop:plan=~(none)"],
    ["city=~i̇stanbul"],
]


def _events(seed: int) -> list[dict]:
    """Random events in bursts (visits, some with gaps over 30 minutes) over three weeks."""
    rng = random.Random(seed)
    out = []
    for burst in range(100):
        visitor = rng.choice([*(f"u:user{n}" for n in range(12)), None])
        moment = START + timedelta(hours=rng.uniform(0, HOURS))
        old = rng.random() < 0.15
        for _ in range(rng.randint(1, 6)):
            moment += timedelta(minutes=rng.choice([0, 1, 10, 29, 30, 31, 50]))
            kind = rng.choice(["pageview", "pageview", "click", "custom", "success"])
            out.append(
                {
                    "event_name": kind,
                    "name": rng.choice([*RULES, None]) if kind == "success" else None,
                    "page_path": rng.choice(PAGES),
                    "visitor_id": visitor or f"a:{burst}-{len(out)}",
                    "success_value_micros": rng.choice([None, 0, 1, 9_990_000, 2**62])
                    if kind == "success"
                    else None,
                    "properties": rng.choice(PROPERTIES),
                    "occurred_at": moment.replace(microsecond=rng.choice([0, 500])),
                    "received_at": START,
                    "is_test": rng.random() < 0.03,
                    "from_browser": kind != "success" and rng.random() < 0.8,
                    **{
                        name: None if old else rng.choice(values)
                        for name, values in ACQUISITION.items()
                    },
                }
            )
    return out


def _filter_value(rng: random.Random, dimension: str, op: str) -> str:
    """A value to compare with: a sentinel, a stored value, or part of one in another case."""
    pool = [NONE, NOT_RECORDED, *PAGES, *RULES, "pro", "Pro", "STRASSE", "ss", "I", "2.5"]
    pool += [v for values in ACQUISITION.values() for v in values if v]
    value = rng.choice(pool)[:40]
    if op == "=~" and len(value) > 2 and rng.random() < 0.6:
        at = rng.randrange(len(value) - 1)
        value = value[at : at + rng.randint(1, 4)]
        value = value.upper() if rng.random() < 0.5 else value
    return value.strip() or "x"


def _filters(rng: random.Random) -> list[Filter]:
    """Zero to three random filters."""
    names = [*DIMENSIONS, *(f"prop:{key}" for key in PROPERTY_KEYS)]
    found = []
    for _ in range(rng.choice([0, 1, 1, 2, 3])):
        dimension, op = rng.choice(names), rng.choice(OPERATORS)
        found.append(Filter(dimension, op, _filter_value(rng, dimension, op)))
    return found


def _store(app, seed: int) -> int:
    """A site in ZONE with the random events and its rules; returns its id."""
    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    with app.app_context():
        db.session.get(Site, site_id).timezone = ZONE
        for event in _events(seed):
            db.session.execute(insert(Event), {"site_id": site_id, **event})
        for name in RULES[:2]:
            db.session.add(SuccessRule(site_id=site_id, name=name, first_seen_at=START))
        db.session.commit()
    return site_id


def _compare(app, site_id: int, seed: int, filter_sets: int, chosen: bool) -> None:
    """Every report, SQL against Python, for random filter sets over both ranges (and the
    CHOSEN ones over the first)."""
    rng = random.Random(seed)
    dimensions = [*DIMENSIONS, *(f"prop:{key}" for key in PROPERTY_KEYS)]
    with app.app_context():
        site = db.session.get(Site, site_id)
        picked = [[parse_filter(text) for text in texts] for texts in CHOSEN if chosen]
        for index, (first, last) in enumerate(RANGES):
            span = DateRange(first, last, zone(ZONE))
            randoms = [_filters(rng) for _ in range(filter_sets)]
            for filters in [*(picked if index == 0 else []), *randoms]:
                note = f"{first} {[str(f) for f in filters]}"
                tables = sql_rows.dimension_tables(site, span, dimensions, filters, 50)
                assert tables == python.dimension_tables(site, span, dimensions, filters, 50), note
                dimension = rng.choice(dimensions)
                limit, offset = rng.choice([(1, 0), (2, 1), (3, 2), (5, 40)])
                got = sql_rows.dimension_rows(site, span, dimension, filters, limit, offset)
                want = python.dimension_rows(site, span, dimension, filters, limit, offset)
                assert got == want, f"{note} {dimension} {limit} {offset}"
                want_stats = python.stats(site, span, filters)
                assert sql_filtered.stats(site, span, filters) == want_stats, note
                key = rng.choice(PROPERTY_KEYS)
                got_props = sql_filtered.property_rows(site, span, key, filters)
                assert got_props == python.property_rows(site, span, key, filters), note
                previous = span.previous()
                want_previous = python.series(site, previous, filters)
                assert sql_filtered.series(site, previous, filters) == want_previous, note
                # The dashboard's figures and previous chart, from one read of both periods.
                both = sql_filtered.stats_and_previous_series(site, span, filters)
                assert both == (want_stats, want_previous), note


@pytest.mark.parametrize(("seed", "chosen"), [(1, True), (2, False)])
def test_the_sql_reports_equal_the_count_event_by_event(app, seed, chosen):
    _compare(app, _store(app, seed), seed, 2 if chosen else 4, chosen)


def test_the_sql_reports_equal_the_count_event_by_event_on_postgresql(pg_app):  # noqa: F811
    _compare(pg_app, _store(pg_app, 3), 3, 1, True)


def test_a_page_past_the_last_row_still_counts_the_rows(app):
    site_id = _store(app, 4)
    with app.app_context():
        site = db.session.get(Site, site_id)
        span = DateRange(*RANGES[1], zone(ZONE))
        every = sql_rows.dimension_rows(site, span, "page", [], 100, 0)
        past = sql_rows.dimension_rows(site, span, "page", [], 10, 1000)
        assert past.rows == [] and past.total_rows == every.total_rows == len(every.rows) > 0
