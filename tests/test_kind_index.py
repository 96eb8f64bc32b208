"""The kind index of unsaved funnels: the same reports as reading the events, for random
funnels over random events (ties, prefixes, rules, values, visitors and anonymous ones),
after late events, an erasure and a retention cut-off; and when it steps aside. On SQLite
and PostgreSQL."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from datalook.analytics import kinds, settled
from datalook.analytics.funnels import unsaved as funnel_store
from datalook.analytics.funnels.definition import parse_definition
from datalook.analytics.funnels.models import KindEvent
from datalook.analytics.funnels.report import compute
from datalook.analytics.ranges import DateRange
from datalook.erasure import delete_before, erase_visitor
from datalook.extensions import db
from datalook.models import Event, Site
from tests.conftest import add_site, sign_up
from tests.funnel_data import E, store
from tests.test_postgres import pg_app  # noqa: F401 (the fixture)

T0 = datetime(2026, 5, 1)
PATHS = ["/", "/pricing", "/signup", "/docs/a", "/docs/b", "/app"]
RANGE = DateRange(date(2026, 5, 2), date(2026, 5, 4), ZoneInfo("UTC"))


def _events(rng: random.Random, n: int, t0: datetime = T0) -> list[E]:
    """Random events of 12 visitors and some anonymous ones over five days, with ties."""
    out = []
    for _ in range(n):
        who = rng.choice([f"u:{i}" for i in range(12)] + ["a:1", "a:2"])
        at = t0 + timedelta(minutes=rng.choice(range(0, 5 * 24 * 60, 7)))  # many equal times
        if rng.random() < 0.2:
            value = rng.choice([None, 1_000_000, 2_500_000])
            out.append(
                E(who, at, "success", rng.choice(PATHS), rng.choice(["paid", "trial"]), value)
            )
        else:
            out.append(E(who, at, rng.choice(["pageview", "click"]), rng.choice(PATHS)))
    return out


def _step(rng: random.Random) -> dict:
    """A random step without a property."""
    kind = rng.random()
    if kind < 0.2:
        return {"event_name": "success", "name": rng.choice(["paid", "trial"])}
    if kind < 0.3:
        return {"event_name": "pageview", "page_path": "/docs/*"}
    if kind < 0.4:
        return {"event_name": "click"}
    return {"event_name": "pageview", "page_path": rng.choice(PATHS)}


def _both(app, site_id: int, definition, days: DateRange = RANGE) -> tuple[dict, dict]:
    """The report read from the index, and computed from the events."""
    with app.app_context():
        session = db.session()
        start, end = days.start_utc, days.end_utc
        assert kinds.ready(session)
        assert kinds.visitor_events(session, site_id, definition, start, end) is not None
        indexed = funnel_store.unsaved_report(session, site_id, definition, days)
        rows = funnel_store.event_rows(session, site_id, definition, start, end + definition.window)
        direct = compute(definition, rows, start, end)
        return indexed.as_json("USD"), direct.as_json("USD")


def _index_matches_events(app, site_id: int) -> None:
    """Every counted event is in the index once, and nothing else is."""
    with app.app_context():
        kinds.catch_up(db.session())
        indexed = db.session.scalars(
            select(KindEvent.event_id).where(KindEvent.site_id == site_id)
        ).all()
        stored = db.session.scalars(select(Event.id).where(Event.site_id == site_id)).all()
        assert sorted(indexed) == sorted(stored)


def run_random_funnels(app, site_id: int, seed: int, t0: datetime = T0) -> None:
    """Random funnels agree before and after late events, an erasure and a retention cut,
    each twice (the second reads what the first kept of the settled past)."""
    rng = random.Random(seed)
    days = DateRange(
        (t0 + timedelta(days=1)).date(), (t0 + timedelta(days=3)).date(), ZoneInfo("UTC")
    )
    store(app, site_id, _events(rng, 400, t0))
    definitions = [
        parse_definition(
            [_step(rng) for _ in range(rng.randint(2, 5))], rng.choice(["30m", "6h", "2d"]), None
        )
        for _ in range(12)
    ]

    def agree() -> None:
        for definition in definitions:
            for _ in range(2):
                indexed, direct = _both(app, site_id, definition, days)
                assert indexed == direct, definition

    agree()
    store(app, site_id, _events(rng, 100, t0))  # new and late events
    agree()
    with app.app_context():
        site = db.session.get(Site, site_id)
        erase_visitor(site, "3", actor="test")
        delete_before(db.session.get(Site, site_id), t0 + timedelta(days=2, hours=5), "test")
    _index_matches_events(app, site_id)
    agree()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_funnels_from_the_index_equal_the_events(client, app, seed):
    sign_up(client)
    run_random_funnels(app, add_site(client), seed)


def test_random_funnels_across_the_settled_boundary(client, app):
    """A range whose first days are settled (kept per process) and last days fresh."""
    sign_up(client)
    t0 = settled.boundary() - timedelta(days=2)
    run_random_funnels(app, add_site(client), 7, t0.replace(hour=0, minute=0))


def test_random_funnels_from_the_index_on_postgresql(pg_app):  # noqa: F811
    client = pg_app.test_client()
    sign_up(client)
    run_random_funnels(pg_app, add_site(client), 4)


@pytest.mark.parametrize(
    ("steps", "mode", "why"),
    [
        ([{"event_name": "pageview"}, {"event_name": "click"}], "strict", "strict"),
        (
            [
                {"event_name": "pageview", "property": {"key": "plan", "value": "pro"}},
                {"event_name": "click"},
            ],
            "ordered",
            "property",
        ),
    ],
)
def test_the_index_steps_aside_where_it_cannot_answer(client, app, steps, mode, why):
    sign_up(client)
    site_id = add_site(client)
    store(app, site_id, _events(random.Random(5), 50))
    with app.app_context():
        definition = parse_definition(steps, "1d", mode)
        found = kinds.visitor_events(
            db.session(), site_id, definition, RANGE.start_utc, RANGE.end_utc
        )
        assert found is None, why


def test_far_behind_or_too_many_kinds_the_events_are_read(client, app, monkeypatch):
    sign_up(client)
    site_id = add_site(client)
    store(app, site_id, _events(random.Random(6), 200))
    definition = parse_definition([{"event_name": "pageview"}, {"event_name": "click"}], "1d", None)
    with app.app_context():
        session = db.session()
        monkeypatch.setattr(kinds, "BEHIND_AT_MOST", 10)
        assert not kinds.ready(session)
        assert session.scalar(select(func.count()).select_from(KindEvent)) == 0  # not derived
        monkeypatch.setattr(kinds, "BEHIND_AT_MOST", 10_000)
        assert kinds.ready(session)
        monkeypatch.setattr(kinds, "MAX_KINDS", 3)  # "pageview" on six paths, "click" on six
        assert (
            kinds.visitor_events(session, site_id, definition, RANGE.start_utc, RANGE.end_utc)
            is None
        )
        monkeypatch.setattr(kinds, "MAX_KINDS", 2_000)
        assert (
            kinds.visitor_events(session, site_id, definition, RANGE.start_utc, RANGE.end_utc)
            is not None
        )
    indexed, direct = _both(app, site_id, definition)
    assert indexed == direct
