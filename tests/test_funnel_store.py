"""Unsaved funnels from the copy of the events (funnels.store_match) against the matching
in Python (report.compute over every counted event, masked by Step.matches).

Random events with many ties (a visitor's events at one instant, matching several steps),
anonymous `a:` events, browsers' `c:` ids and test-key events; random definitions
(ordered and strict, overlapping steps, prefixes, a path in another case, rule names,
properties, windows from a minute to a day) over random ranges; on SQLite and
PostgreSQL, with nothing built, once built, after late events, an erasure and an identity
link.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from operator import itemgetter
from zoneinfo import ZoneInfo

from sqlalchemy import select

from datalook import erasure
from datalook.analytics.funnels import store_match
from datalook.analytics.funnels.definition import FunnelDefinition, parse_definition
from datalook.analytics.funnels.report import compute
from datalook.analytics.funnels.unsaved import unsaved_report
from datalook.analytics.ranges import DateRange
from datalook.analytics.store import invalidate
from datalook.extensions import db
from datalook.models import Event, Site
from tests.test_analytics_store import (
    DAY0,
    DAYS,
    build_all,
    engine_app,  # noqa: F401 - the fixture, used by name
    link,
    new_site,
    store_events,
)
from tests.test_postgres import pg_app  # noqa: F401 - the fixture, used by name

PAGES = ["/", "/pricing", "/docs/a", "/Docs/b", "/signup"]
VISITORS = ["u:1", "u:2", "u:3", "u:4", "c:b1", "c:b2", None]
# Property texts: the value a step asks for, another, 1.0 for 1, true for 1, a key that is
# only a value elsewhere (SQL narrows by the key's text; Python decides).
PROPERTIES = [None, None, '{"plan":"pro"}', '{"plan":"free","n":1}', '{"n":1.0}', '{"plan":true}']
PROPERTIES += ['{"x":"plan"}', '{"n":true}']


def funnel_events(seed: int) -> list[dict]:
    """Bursts of events per visitor, at whole minutes (so many share an instant)."""
    rng = random.Random(seed)
    out = []
    for burst in range(80):
        who = rng.choice(VISITORS)
        at = DAY0 + timedelta(minutes=rng.randrange(DAYS * 1440))
        for n in range(rng.randint(1, 6)):
            at += timedelta(minutes=rng.choice([0, 0, 1, 2, 5, 40]))
            visitor = who or f"a:{burst}-{n}"
            kind = rng.choice(["pageview", "pageview", "pageview", "success", "click"])
            out.append(
                {
                    "event_name": kind,
                    "name": rng.choice(["paid", "trial"]) if kind != "pageview" else None,
                    "page_path": rng.choice(PAGES),
                    "visitor_id": visitor,
                    "success_user_id": visitor[2:] if visitor.startswith("u:") else None,
                    "success_value_micros": rng.choice([None, 1, 4_900_000])
                    if kind == "success"
                    else None,
                    "properties": rng.choice(PROPERTIES),
                    "occurred_at": at,
                    "received_at": datetime(2026, 3, 1),
                    "is_test": rng.random() < 0.05,
                    "from_browser": kind != "success",
                    "anonymous_id": visitor if visitor.startswith("c:") else None,
                    "channel": "Direct",
                }
            )
    return out


def random_definition(rng: random.Random) -> FunnelDefinition:
    """A funnel of 2 to 5 steps, often overlapping (a bare pageview, prefixes), some with a
    property, ordered or strict."""
    steps = []
    for _ in range(rng.randint(2, 5)):
        kind = rng.choice(["pageview", "pageview", "success", "click"])
        step: dict = {"event_name": kind}
        if kind == "pageview" or rng.random() < 0.2:
            step["page_path"] = rng.choice([None, "/", "/pricing", "/docs/*", "/*", "/signup"])
        if kind != "pageview" and rng.random() < 0.6:
            step["name"] = rng.choice(["paid", "trial"])
        if rng.random() < 0.25:
            key, value = rng.choice([("plan", "pro"), ("plan", True), ("n", 1), ("n", True)])
            step["property"] = {"key": key, "value": value}
        steps.append(step)
    window = rng.choice(["1m", "3m", "45m", "2h", "1d"])
    return parse_definition(steps, window, rng.choice(["ordered", "ordered", "strict"]))


def python_report(site_id: int, definition: FunnelDefinition, start: datetime, end: datetime):
    """The report from every counted event of the site, masked in Python (Step.matches)."""
    found = db.session.execute(
        select(
            Event.id,
            Event.visitor_id,
            Event.occurred_at,
            Event.event_name,
            Event.page_path,
            Event.name,
            Event.properties,
            Event.success_value_micros,
        ).where(Event.site_id == site_id, Event.counted())
    ).all()
    rows = []
    for event_id, visitor, at, kind, page, name, props, value in found:
        mask = definition.step_mask(kind, page, name, props)
        strict = definition.mode == "strict"  # every event: what lies between steps
        if (mask or strict) and start <= at < end + definition.window:
            rows.append((event_id, visitor, at, mask, value))
    rows.sort(key=itemgetter(1, 2, 0))
    return compute(definition, rows, start, end)


def assert_same(app, site_id: int, rng: random.Random, count: int = 8) -> None:
    """The copy's report equals the Python one, over random definitions and ranges."""
    with app.app_context():
        for _ in range(count):
            definition = random_definition(rng)
            start = DAY0 + timedelta(minutes=rng.randrange(-600, DAYS * 1440))
            end = start + timedelta(minutes=rng.choice([30, 600, 1440, 4 * 1440]))
            expected = python_report(site_id, definition, start, end)
            got = store_match.store_report(site_id, definition, start, end)
            assert got == expected, (definition, start, end)
        db.session.rollback()


def test_the_copy_gives_the_python_matching_after_every_change(engine_app):  # noqa: F811
    app = engine_app
    seed = 7 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else 8
    rng = random.Random(seed)
    site_id = new_site(app)
    store_events(app, site_id, funnel_events(seed))
    assert_same(app, site_id, rng)  # nothing built: read from the events

    build_all(app)
    assert_same(app, site_id, rng)

    # Late events into built days, at instants the visitors already have.
    with app.app_context():
        known = db.session.execute(
            select(Event.visitor_id, Event.occurred_at).where(Event.site_id == site_id).limit(30)
        ).all()
    late = funnel_events(seed + 50)[: len(known)]
    late = [
        {**row, "visitor_id": visitor, "occurred_at": at, "is_test": False}
        for row, (visitor, at) in zip(late, known, strict=False)
    ]
    store_events(app, site_id, late)
    assert_same(app, site_id, rng)
    build_all(app)
    assert_same(app, site_id, rng)

    with app.app_context():
        site = db.session.get(Site, site_id)
        assert erasure.erase_visitor(site, "2", "test") > 0
    assert_same(app, site_id, rng)

    link(app, site_id, "c:b1", "1")
    assert_same(app, site_id, rng)
    build_all(app)
    assert_same(app, site_id, rng)


def test_the_unsaved_report_reads_the_copy_while_it_is_a_tick_behind(app, monkeypatch):
    site_id = new_site(app)
    store_events(app, site_id, funnel_events(3))
    build_all(app)
    rng = random.Random(3)
    with app.app_context():
        dates = DateRange(DAY0.date(), (DAY0 + timedelta(days=DAYS)).date(), ZoneInfo("UTC"))
        start, end = dates.start_utc, dates.end_utc
        assert store_match.copy_ready(db.session(), site_id, start, end)
        for _ in range(4):
            chosen = random_definition(rng)
            report = unsaved_report(db.session(), site_id, chosen, dates)
            assert report == python_report(site_id, chosen, start, end)
        # Visitors sharing a hash (made common here): sorted by their ids instead.
        shared = store_match._VISITOR_ROWS.replace("hash(visitor)", "hash(visitor) % 2")
        monkeypatch.setattr(store_match, "_VISITOR_ROWS", shared)
        for _ in range(4):
            chosen = random_definition(rng)
            report = unsaved_report(db.session(), site_id, chosen, dates)
            assert report == python_report(site_id, chosen, start, end)

    # Behind the events (a backlog the fold process has not seen): the copy waits.
    monkeypatch.setattr(store_match, "LAG_LIMIT", 5)
    store_events(app, site_id, funnel_events(4)[:6])
    with app.app_context():
        assert not store_match.copy_ready(db.session(), site_id, start, end)
    monkeypatch.setattr(store_match, "UNCOVERED_LIMIT", 5)
    build_all(app)
    with app.app_context():
        assert store_match.copy_ready(db.session(), site_id, start, end)
        # Beyond what is built (the copy's "now"), more rows than the limit.
        later = DAY0 + timedelta(days=DAYS + 1)
        store_events(app, site_id, [{**row, "occurred_at": later} for row in funnel_events(5)])
        invalidate.catch_up(db.session())
        assert not store_match.copy_ready(db.session(), site_id, start, later + timedelta(1))
