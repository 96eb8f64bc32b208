"""The journeys' copy of the settled sessions (store.session_files, journey_days): the
figures counted by DuckDB from the day files equal those counted from the table and an
independent computation from the events (every query shape, ranges in a site time zone),
a day whose sessions change (a late event, an erasure, a retention cut-off, a rebuild) is
not read from its file until that is built again, the fold's upkeep builds the files and
a report read never does; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from datalook.analytics import journey_days, journeys, sessions
from datalook.analytics.funnels.models import VisitorSession
from datalook.analytics.journeys import JourneyQuery
from datalook.analytics.ranges import local_midnight_utc
from datalook.analytics.rebuild import rebuild_site
from datalook.analytics.store import session_files, upkeep
from datalook.analytics.store.models import SessionDay, SessionDayFile
from datalook.analytics.store.read import store_directory
from datalook.erasure import delete_before, delete_site, erase_visitor
from datalook.extensions import db
from datalook.models import Site, utcnow
from tests.conftest import add_site, sign_up
from tests.funnel_data import E, set_timezone, store
from tests.test_journeys_oracle import COMPLETE, _expected, _sessions
from tests.test_postgres import pg_app  # noqa: F401 - the fixture, used by name

# A quote (DuckDB's literals) and characters beyond ASCII (substr counts characters).
PATHS = ["/", "/pricing", "/signup", "/docs", "/app", "/checkout", "/o'neil", "/straße/ü"]
QUERIES = [
    {},
    {"steps": 1},
    {"steps": 2},
    {"steps": 7},
    {"steps": 10},
    {"start": "/pricing"},
    {"start": "/o'neil", "steps": 3},
    {"end": "/checkout", "steps": 1},
    {"end": "/checkout", "steps": 2},
    {"end": "/", "steps": 4},
    {"end": "/straße/ü", "steps": 10},
    {"end": "/o'neil", "steps": 6, "rule": "paid"},
    {"rule": "paid"},
    {"rule": "it's", "steps": 2},
    {"rule": "paid", "steps": 10, "start": "/"},
]
ZONES = ["UTC", "America/New_York", "Asia/Kolkata"]
DAYS = 8


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request, make_app):
    """An app on SQLite, then one on PostgreSQL."""
    if request.param == "sqlite":
        return make_app()
    return request.getfixturevalue("pg_app")


def _events(rng: random.Random, today: datetime) -> list[E]:
    """Sessions of 40 visitors over the last DAYS days, some of more than ten steps."""
    out: list[E] = []
    for n in range(40):
        visitor = f"u:{n}" if n % 9 else f"a:{n}"
        for _ in range(rng.randint(1, 5)):
            at = today - timedelta(days=rng.randint(0, DAYS - 1), minutes=rng.randint(0, 1400))
            for _ in range(rng.randint(1, 14)):
                at += timedelta(minutes=rng.choice([0, 1, 5, 29, 30, 31]))
                if rng.random() < 0.12:
                    name = rng.choice(["paid", "it's", None])
                    out.append(E(visitor, at, "success", "/checkout", name))
                else:
                    out.append(E(visitor, at, path=rng.choice(PATHS)))
    return [e for e in out if e.at < utcnow()]


def _derive(app) -> None:
    """Bring the sessions up to the stored events."""
    with app.app_context():
        sessions.catch_up(db.session)
        db.session.remove()


def _build(app) -> session_files.Built:
    """Build every missing day file now."""
    with app.app_context():
        try:
            return session_files.build(db.session(), store_directory())
        finally:
            db.session.remove()


def _span(days: int) -> tuple[datetime, datetime]:
    """[start, cut): the settled part of the last `days` UTC days."""
    cut = sessions.boundary()
    return cut - timedelta(days=days), cut


def _sources(app, site_id: int, span: tuple[datetime, datetime]) -> journey_days.DaySources | None:
    """Where the span's sessions are read (None: the table as a whole)."""
    with app.app_context():
        try:
            return journey_days.day_sources(db.session, site_id, *span)
        finally:
            db.session.remove()


def _covered(app, site_id: int, span: tuple[datetime, datetime]) -> bool:
    """Whether the day files alone cover the span (the copy is read, no day of the table)."""
    sources = _sources(app, site_id, span)
    return sources is not None and not sources.stale_days


def _by_key(rows) -> dict:
    """Rows of (key, sessions, converted, id, visitors) by key, as plain ints."""
    return {row[0]: tuple(int(value) for value in row[1:]) for row in rows}


def _same_as_table(app, site_id: int, span: tuple[datetime, datetime]) -> None:
    """For every query, the copy's figures of the span equal the table's."""
    with app.app_context():
        t = VisitorSession.__table__.c
        for args in QUERIES:
            query = JourneyQuery(
                int(args.get("steps", 5)), args.get("start"), args.get("end"), args.get("rule")
            )
            filters = (query.start, query.end, query.rule)
            sources = journey_days.day_sources(db.session, site_id, *span)
            assert sources is not None, args
            copied = journey_days.counted(sources, span, query.steps, filters)
            where = [
                t.site_id == site_id,
                t.started_at >= span[0],
                t.started_at < span[1],
                *journeys._session_filters(query),
            ]
            table = journeys._counted(db.session, query, where)
            expected = {
                key: (n, table.converted[key], table.sample[key], table.visitors[key])
                for key, n in table.sessions.items()
            }
            assert _by_key(copied) == expected, args
            # The journeys of visitors in the span (and of one without a session there).
            visitors = sorted(set(db.session.scalars(select(t.visitor_id).where(*where[:3]))))
            visitors.append("u:nobody")
            known: dict[str, set] = {}
            journeys._look_up_earlier(db.session, site_id, query, visitors, span, known)
            found = journey_days.journeys_of(sources, span, query.steps, filters, visitors)
            assert found == known, args
        db.session.remove()


def _check_oracle(app, client, site_id: int, events: list[E], zone: str) -> None:
    """Every query over the last DAYS local days (straddling the boundary) and over a
    settled range equals the computation from the events; the cache dropped first, so
    that the settled part is counted again (from the files when they cover it)."""
    set_timezone(app, site_id, zone)
    tz = ZoneInfo(zone)
    found = _sessions(events)
    today = datetime.now(tz).date()
    ranges = [
        (today - timedelta(days=DAYS), today),
        (today - timedelta(days=DAYS), today - timedelta(days=3)),
    ]
    for first, last in ranges:
        start = local_midnight_utc(first, tz)
        end = local_midnight_utc(last + timedelta(days=1), tz)
        for args in QUERIES:
            app.extensions.pop("datalook_journeys_cache", None)
            dates = {"from": first.isoformat(), "to": last.isoformat()}
            response = client.get(f"/sites/{site_id}/journeys.json?{urlencode({**dates, **args})}")
            assert response.status_code == 200
            body = response.get_json()
            assert body.pop("freshness") == COMPLETE, args
            assert body == _expected(found, start, end, args), (zone, first, last, args)


def _site(app) -> tuple:
    """A signed-up client and a site."""
    client = app.test_client()
    sign_up(client)
    return client, add_site(client)


def _today() -> datetime:
    """This UTC day's midnight."""
    return utcnow().replace(hour=0, minute=0, second=0, microsecond=0)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_copy_gives_the_tables_figures_and_the_oracles_answers(any_app, seed):
    app = any_app
    client, site_id = _site(app)
    events = _events(random.Random(seed), _today())
    store(app, site_id, events)
    _derive(app)
    span = _span(DAYS)
    assert not _covered(app, site_id, span)
    built = _build(app)
    assert built.days >= DAYS - 1 and built.dropped == 0
    assert _covered(app, site_id, span)
    _same_as_table(app, site_id, span)
    _same_as_table(app, site_id, (span[0] + timedelta(hours=13), span[1]))
    for zone in ZONES:
        _check_oracle(app, client, site_id, events, zone)
    assert _build(app).days == 0  # nothing changed: nothing to build


def _settled_day() -> datetime:
    """A settled UTC day a few days back."""
    return sessions.boundary() - timedelta(days=3)


CHANGES = ["late event", "erasure", "retention", "rebuild"]


def _change(app, site_id: int, events: list[E], change: str) -> list[E]:
    """Make the change to the site's events; the events left."""
    day = _settled_day()
    if change == "late event":
        late = [E("u:1", day + timedelta(hours=12, minutes=7), path="/late")]
        store(app, site_id, late)
        return events + late
    with app.app_context():
        site = db.session.get(Site, site_id)
        if change == "erasure":
            erase_visitor(site, "2", actor="test")
            events = [e for e in events if e.visitor != "u:2"]
        elif change == "retention":
            cutoff = day + timedelta(hours=9)
            delete_before(site, cutoff, actor="test")
            events = [e for e in events if e.at >= cutoff]
        else:
            rebuild_site(db.session(), db.engine, app.instance_path, site_id)
        db.session.remove()
    return events


@pytest.mark.parametrize("change", CHANGES)
def test_a_changed_day_is_not_read_from_its_file_until_built_again(any_app, change):
    app = any_app
    client, site_id = _site(app)
    day = _settled_day()
    events = _events(random.Random(7), _today())
    # Sessions of the erased visitor and across the retention cut-off on the settled day.
    events += [
        E("u:2", day + timedelta(hours=h, minutes=m), path=PATHS[m % len(PATHS)])
        for h in (8, 9, 15)
        for m in (50, 55, 59, 75)
    ]
    store(app, site_id, events)
    _derive(app)
    _build(app)
    span = _span(DAYS)
    assert _covered(app, site_id, span)
    events = _change(app, site_id, events, change)
    _derive(app)
    assert not _covered(app, site_id, span), change
    if change in ("late event", "retention"):  # the later days' files stay current
        assert _covered(app, site_id, (day + timedelta(days=1), span[1]))
    sources = _sources(app, site_id, span)
    if change == "late event":  # that day alone is read from the table, beside the files
        assert sources is not None and sources.stale_days == (day,)
        assert len(sources.paths) >= DAYS - 2
        _same_as_table(app, site_id, span)
    elif change == "rebuild":  # every day changed: the table as a whole
        assert sources is None
    else:  # that day is never read from its file
        assert sources is None or day in sources.stale_days, change
    _check_oracle(app, client, site_id, events, "UTC")
    assert _build(app).days >= 1
    assert _covered(app, site_id, span)
    _same_as_table(app, site_id, span)
    _check_oracle(app, client, site_id, events, "Asia/Kolkata")


def _files(app) -> list[Path]:
    """The day files on the disk."""
    with app.app_context():
        folder = store_directory() / session_files.FOLDER
    return sorted(folder.glob("*/*")) if folder.is_dir() else []


def _rows(app, model) -> int:
    """How many rows a table holds."""
    with app.app_context():
        try:
            return int(db.session.scalar(select(func.count()).select_from(model)) or 0)
        finally:
            db.session.remove()


def test_the_fold_builds_the_files_and_a_read_never_does(any_app):
    app = any_app
    client, site_id = _site(app)
    events = _events(random.Random(3), _today())
    store(app, site_id, events)
    last = utcnow().date()
    first = last - timedelta(days=DAYS)
    query = urlencode({"from": first.isoformat(), "to": last.isoformat()})
    assert client.get(f"/sites/{site_id}/journeys.json?{query}").status_code == 200
    assert _rows(app, SessionDayFile) == 0 and _files(app) == []
    for _ in range(30):  # a few ticks, each within its budget
        with app.app_context():
            upkeep.tick(db.session(), store_directory())
            db.session.remove()
        if _covered(app, site_id, _span(DAYS)):
            break
    assert _rows(app, SessionDayFile) >= DAYS - 1
    assert _covered(app, site_id, _span(DAYS))
    assert _files(app)
    _check_oracle(app, client, site_id, events, "UTC")


def test_stale_files_are_removed_and_current_ones_kept(any_app):
    app = any_app
    _, site_id = _site(app)
    events = _events(random.Random(5), _today())
    store(app, site_id, events)
    _derive(app)
    _build(app)
    before = set(_files(app))
    _change(app, site_id, events, "late event")
    _derive(app)
    assert _rows(app, SessionDay) >= 1
    _build(app)
    after = set(_files(app))
    assert len(after - before) == 1  # the late event's day, built again
    with app.app_context():
        removed = session_files.collect(db.session(), store_directory(), timedelta(0))
        db.session.remove()
    assert removed == 1  # the changed day's old file
    assert (after - before) < set(_files(app)) < after
    assert _covered(app, site_id, _span(DAYS))


def test_deleting_a_site_deletes_its_versions_and_files_rows(any_app):
    app = any_app
    _, site_id = _site(app)
    store(app, site_id, _events(random.Random(11), _today()))
    _derive(app)
    _build(app)
    assert _rows(app, SessionDay) and _rows(app, SessionDayFile)
    with app.app_context():
        delete_site(db.session.get(Site, site_id), actor="test")
        db.session.remove()
    assert _rows(app, SessionDay) == 0 and _rows(app, SessionDayFile) == 0
