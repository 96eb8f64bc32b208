"""Deleting events leaves what is derived from them as a derivation from scratch would.

A retention cut-off (`flask events delete --before`), erasing a visitor and clearing test
events must leave every derived table (rollups, visitor sketches, the kind index, sessions,
each saved funnel's matched events, attempts and excluded counts) and every report
(stats.json, saved funnels, funnel.json, journeys.json) exactly as they would be had only
the remaining events ever been stored; `flask analytics rebuild` must make them so from
any state. The oracle is a second site of the same database, fed only the remaining events
(in the same order) and derived from scratch: its rows are compared with the first site's
(event ids read as the events' own `event_id`), its reports with the first site's. Random
events over twelve days around New York's change to summer time, cut-offs in UTC,
Asia/Kolkata (midnight on a half hour) and America/New_York; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import func, insert, select, update

from datalook import erasure
from datalook.analytics import catch_up as derive
from datalook.analytics import rebuild, sketches
from datalook.analytics.funnels import derivation as funnel_derivations
from datalook.analytics.funnels import repository
from datalook.analytics.funnels.definition import parse_definition
from datalook.analytics.funnels.models import (
    EventKind,
    Funnel,
    FunnelAttempt,
    FunnelDerivation,
    FunnelEvent,
    FunnelExcluded,
    KindEvent,
    VisitorSession,
)
from datalook.analytics.ranges import local_midnight_utc, site_zone
from datalook.analytics.rollups import fold as summaries
from datalook.analytics.rollups.models import (
    HourlyPage,
    HourlyProperty,
    HourlyRule,
    HourlyTotals,
    VisitorSketch,
)
from datalook.extensions import db
from datalook.models import ROLE_OWNER, Event, Site, SiteMember, User
from tests.conftest import sign_up
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

START = datetime(2026, 3, 2)  # twelve days around New York's change to summer time (03-08)
DAYS = 12
PATHS = ["/", "/pricing", "/docs", "/checkout"]
HOME = {"event_name": "pageview", "page_path": "/"}
PRICING = {"event_name": "pageview", "page_path": "/pricing"}
PAID = {"event_name": "success", "name": "paid"}
PRO = {"event_name": "pageview", "property": {"key": "plan", "value": "pro"}}
FUNNELS = {
    "Checkout": ([HOME, PRICING, PAID], "24h"),
    "Quick": ([PRICING, PAID], "90m"),
    "Pro": ([PRO, PAID], "2d"),
}
JOURNEYS = [{}, {"end": "/checkout", "steps": 3}, {"rule": "paid", "steps": 2}]


@dataclass(frozen=True)
class Sent:
    """One stored event; `serial` is its event_id, the same on both sites; `browser`:
    sent by a browser (its page views make visits)."""

    serial: str
    visitor: str
    at: datetime
    kind: str
    path: str
    name: str | None
    value: int | None
    plan: str | None
    test: bool
    browser: bool = False


def random_events(seed: int, bursts: int = 70) -> list[Sent]:
    """Bursts of events of a few visitors (gaps around the 30-minute session limit) and of
    anonymous ones, some sent with a test key, in no particular order of time."""
    rng = random.Random(seed)
    out: list[Sent] = []
    for _ in range(bursts):
        visitor = rng.choice([f"u:{n}" for n in range(12)] + ["anonymous"] * 3)
        at = START + timedelta(seconds=rng.randrange(DAYS * 86400))
        test = rng.random() < 0.06
        for _ in range(rng.randint(1, 7)):
            at += timedelta(minutes=rng.choice([0, 1, 4, 17, 29, 30, 31, 50]), seconds=rng.random())
            kind = rng.choices(["pageview", "click", "success"], [6, 1, 2])[0]
            success = kind == "success"
            out.append(
                Sent(
                    serial=f"e{len(out)}",
                    visitor=f"a:{len(out)}" if visitor == "anonymous" else visitor,
                    at=at,
                    kind=kind,
                    path=rng.choice(PATHS),
                    name=rng.choice(["paid", "trial"]) if success else None,
                    value=rng.choice([None, 990_000, 19_990_000]) if success else None,
                    plan=rng.choice([None, "pro", "free"]),
                    test=test,
                )
            )
    return out


def store(site_id: int, events: list[Sent]) -> None:
    """Insert the events as ingestion stores them, in the list's order."""
    if not events:
        return
    db.session.execute(
        insert(Event),
        [
            {
                "site_id": site_id,
                "event_name": e.kind,
                "name": e.name,
                "page_path": e.path,
                "visitor_id": e.visitor,
                "success_user_id": e.visitor[2:] if e.visitor.startswith("u:") else None,
                "success_value_micros": e.value,
                "properties": json.dumps({"plan": e.plan}) if e.plan else None,
                "event_id": e.serial,
                "occurred_at": e.at,
                "received_at": datetime(2026, 3, 1),
                "is_test": e.test,
                "from_browser": e.browser,
            }
            for e in events
        ],
    )
    db.session.commit()


def new_site(app, zone: str, funnels: bool = True) -> int:
    """A site of the test's owner in `zone`, with the saved funnels; its id."""
    with app.app_context():
        owner = db.session.scalar(select(User).order_by(User.id).limit(1))
        count = db.session.scalar(select(func.count()).select_from(Site))
        site = Site(owner=owner, domain=f"site{count}.example.com", timezone=zone)
        db.session.add(site)
        db.session.add(SiteMember(site=site, user_id=owner.id, role=ROLE_OWNER))
        db.session.commit()
        site_id = site.id
        if funnels:
            for name, (steps, window) in FUNNELS.items():
                definition = parse_definition(steps, window, "ordered")
                repository.save(db.session, site_id, name, definition)
    return site_id


def derive_all(app) -> None:
    """Fold the summaries and derive every derived table up to the newest event."""
    with app.app_context():
        summaries.catch_up(db.engine, app.instance_path)
        derive.catch_up_all(db.session)
        db.session.remove()


def _sorted(rows) -> list[tuple]:
    """Rows as tuples in a fixed order (None sorts too)."""
    return sorted((tuple(row) for row in rows), key=repr)


def derived_rows(site_id: int) -> dict:
    """Every row derived from the site's events, without the site's own ids: events by
    their event_id, kinds by their names, funnels by their names."""
    serial = dict(
        db.session.execute(select(Event.id, Event.event_id).where(Event.site_id == site_id)).all()
    )

    def event(event_id: int) -> str:
        return serial.get(event_id, f"a deleted event {event_id}")

    out: dict = {}
    for table in (HourlyTotals, HourlyRule, HourlyPage, HourlyProperty):
        columns = [c for c in table.__table__.c if c.name != "site_id"]
        out[table.__tablename__] = _sorted(
            db.session.execute(select(*columns).where(table.site_id == site_id))
        )
    out["visitor_sketches"] = {
        (hours, dim, start): round(sketches.load(data).get_estimate())
        for hours, dim, start, data in db.session.execute(
            select(
                VisitorSketch.hours, VisitorSketch.dim, VisitorSketch.start, VisitorSketch.sketch
            ).where(VisitorSketch.site_id == site_id)
        )
    }
    out["event_kinds"] = _sorted(
        db.session.execute(
            select(EventKind.event_name, EventKind.page_path, EventKind.name).where(
                EventKind.site_id == site_id
            )
        )
    )
    out["kind_events"] = _sorted(
        (name, path, rule, at, event(event_id), visitor, value)
        for name, path, rule, at, event_id, visitor, value in db.session.execute(
            select(
                EventKind.event_name,
                EventKind.page_path,
                EventKind.name,
                KindEvent.occurred_at,
                KindEvent.event_id,
                KindEvent.visitor_id,
                KindEvent.value_micros,
            )
            .join(EventKind, EventKind.id == KindEvent.kind_id)
            .where(KindEvent.site_id == site_id)
        )
    )
    columns = [c for c in VisitorSession.__table__.c if c.name not in ("id", "site_id")]
    out["visitor_sessions"] = _sorted(
        db.session.execute(select(*columns).where(VisitorSession.site_id == site_id))
    )
    for funnel in db.session.scalars(select(Funnel).where(Funnel.site_id == site_id)):
        derivations = db.session.scalars(
            select(FunnelDerivation.id).where(FunnelDerivation.funnel_id == funnel.id)
        ).all()
        out[f"{funnel.name}: derivations"] = len(derivations)
        current = funnel_derivations.current(db.session, funnel.id)
        d = current.id
        out[f"{funnel.name}: funnel_events"] = _sorted(
            (event(r.event_id), r.visitor_id, r.occurred_at, r.step_mask, r.value_micros)
            for r in db.session.scalars(select(FunnelEvent).where(FunnelEvent.derivation_id == d))
        )
        columns = [
            c
            for c in FunnelAttempt.__table__.c
            if c.name not in ("derivation_id", "start_event_id")
        ]
        out[f"{funnel.name}: funnel_attempts"] = _sorted(
            (event(row[0]), *row[1:])
            for row in db.session.execute(
                select(FunnelAttempt.start_event_id, *columns).where(
                    FunnelAttempt.derivation_id == d
                )
            )
        )
        out[f"{funnel.name}: funnel_excluded"] = _sorted(
            db.session.execute(
                select(FunnelExcluded.bucket, func.sum(FunnelExcluded.events))
                .where(FunnelExcluded.derivation_id == d)
                .group_by(FunnelExcluded.bucket)
                .having(func.sum(FunnelExcluded.events) != 0)
            )
        )
    return out


def reports(client, site_id: int, days: list[tuple[date, date]], unsaved: bool = True) -> dict:
    """stats.json and each saved funnel's JSON over the ranges, journeys.json over the
    first; with `unsaved`, each saved funnel must answer as its funnel.json."""
    out: dict = {}
    with client.application.app_context():
        funnels = {f.name: f.id for f in repository.site_funnels(db.session, site_id)}
    for first, last in days:
        dates = {"from": first.isoformat(), "to": last.isoformat()}
        stats = client.get(f"/sites/{site_id}/stats.json?{urlencode(dates)}").get_json()
        del stats["site"]
        out[f"stats {first} {last}"] = stats
        for name, funnel_id in funnels.items():
            steps, window = FUNNELS[name]
            saved = client.get(f"/sites/{site_id}/funnels/{funnel_id}.json?{urlencode(dates)}")
            assert saved.status_code == 200
            out[f"funnel {name} {first} {last}"] = saved.get_json()
            if unsaved:
                args = [("step", json.dumps(s)) for s in steps]
                args += [("window", window), ("mode", "ordered"), *dates.items()]
                answer = client.get(f"/sites/{site_id}/funnel.json?{urlencode(args)}")
                assert answer.get_json() == saved.get_json(), (name, first, last)
    dates = {"from": days[0][0].isoformat(), "to": days[0][1].isoformat()}
    for query in JOURNEYS:
        answer = client.get(f"/sites/{site_id}/journeys.json?{urlencode({**dates, **query})}")
        assert answer.status_code == 200
        out[f"journeys {query}"] = answer.get_json()
    return out


def assert_as_from_scratch(app, client, site_id: int, zone: str, kept: list[Sent], around: date):
    """The site's derived rows and reports equal those of a new site fed only `kept`."""
    scratch = new_site(app, zone)
    with app.app_context():
        store(scratch, kept)
    derive_all(app)
    days = [
        (START.date() - timedelta(days=1), (START + timedelta(days=DAYS + 1)).date()),
        (around, around + timedelta(days=1)),  # hourly points
    ]
    with app.app_context():
        got, want = derived_rows(site_id), derived_rows(scratch)
    for table in want:
        assert got[table] == want[table], table
    assert got == want
    assert reports(client, site_id, days) == reports(client, scratch, days, unsaved=False)
    with app.app_context():  # the next derivations need not go through its funnels
        for funnel in repository.site_funnels(db.session, scratch):
            repository.delete_funnel(db.session, funnel)


def local_midnight(day: date, zone: str) -> datetime:
    """The naive UTC instant of a local midnight."""
    return local_midnight_utc(day, site_zone(zone))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_app(request):
    """An app with a logged-in owner, on each database."""
    app = request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")
    client = app.test_client()
    sign_up(client)
    return app, client


def test_deletions_leave_what_a_derivation_from_scratch_would(engine_app):
    app, client = engine_app
    for zone, seed in [("UTC", 1), ("Asia/Kolkata", 2), ("America/New_York", 3)]:
        delete_and_compare(app, client, zone, seed)


def delete_and_compare(app, client, zone: str, seed: int) -> None:
    """Two random cut-offs, an erasure and clearing the test events on a site in `zone`,
    each followed by the comparison with a derivation from scratch."""
    rng = random.Random(seed)
    events = random_events(seed)
    site_id = new_site(app, zone)
    with app.app_context():
        domain = db.session.get(Site, site_id).domain
        store(site_id, events[:-15])
    derive_all(app)
    with app.app_context():  # a few events not derived yet when the events are deleted
        store(site_id, events[-15:])
    runner = app.test_cli_runner()
    kept = list(events)
    # Two cut-offs; in New York the second is the midnight that begins the day of the
    # change to summer time (03-08, 23 hours long), which the reports then read.
    cuts = sorted(rng.sample(range(1, DAYS), 2))
    if zone == "America/New_York":
        cuts = [rng.randint(1, 5), 6]
    for day in cuts:
        cut = START.date() + timedelta(days=day)
        done = runner.invoke(args=["events", "delete", "--site", domain, "--before", str(cut)])
        assert done.exit_code == 0, done.output
        kept = [e for e in kept if e.at >= local_midnight(cut, zone)]
        assert_as_from_scratch(app, client, site_id, zone, kept, cut)
    # Erasing a visitor, then clearing the test events (the newest: on SQLite the events
    # stored next take their ids again, and are derived all the same).
    tests = [
        Sent(f"t{n}", "u:tester", e.at, e.kind, e.path, e.name, e.value, None, True)
        for n, e in enumerate(rng.sample(kept, 5))
    ]
    with app.app_context():
        store(site_id, tests)
    derive_all(app)  # every cursor past them
    with app.app_context():
        site = db.session.get(Site, site_id)
        user = rng.choice(sorted({e.visitor for e in kept if e.visitor.startswith("u:")}))
        assert erasure.erase_visitor(site, user[2:], "test") > 0
        kept = [e for e in kept if e.visitor != user]
        cleared = erasure.clear_test_events(db.session.get(Site, site_id), "test")
        assert cleared == len(tests) + sum(e.test for e in kept)
        kept = [e for e in kept if not e.test]
    assert_as_from_scratch(app, client, site_id, zone, kept, cut)


def _spoil(site_id: int) -> None:
    """Leave derived rows that no derivation would: what deletions once left behind."""
    db.session.execute(update(HourlyTotals).where(HourlyTotals.site_id == site_id).values(events=7))
    db.session.execute(
        insert(HourlyPage).values(
            site_id=site_id, hours=1, hour=datetime(2026, 1, 1), page_path="/gone", events=0
        )
    )
    sessions = db.session.scalars(
        select(VisitorSession.id).where(VisitorSession.site_id == site_id).limit(3)
    ).all()
    db.session.execute(
        update(VisitorSession).where(VisitorSession.id.in_(sessions)).values(events=99)
    )
    kind = db.session.scalar(select(EventKind.id).where(EventKind.site_id == site_id).limit(1))
    db.session.execute(
        KindEvent.__table__.delete().where(KindEvent.site_id == site_id, KindEvent.kind_id == kind)
    )
    db.session.add(EventKind(site_id=site_id, digest="0" * 64, event_name="click", page_path="/x"))
    db.session.execute(update(FunnelAttempt).values(prev_ge=datetime(2026, 3, 20)))
    db.session.execute(update(FunnelExcluded).values(events=FunnelExcluded.events + 5))
    db.session.commit()


def test_analytics_rebuild_repairs_every_derived_table(engine_app, monkeypatch):
    app, client = engine_app
    events = random_events(5, bursts=40)
    site_id = new_site(app, "Asia/Kolkata")
    with app.app_context():
        domain = db.session.get(Site, site_id).domain
        store(site_id, events)
    derive_all(app)
    # Windows of 13 events (sessions and funnel days across their edges), and events that
    # arrive (some late, some new) and are derived between two windows.
    monkeypatch.setattr(rebuild, "WINDOW_EVENTS", 13)
    arriving = random_events(6, bursts=6)
    arriving = [replace(e, serial=f"n{e.serial}") for e in arriving]
    windows = rebuild.windows

    def windows_while_events_arrive(session, site):
        for n, window in enumerate(windows(session, site)):
            if n == 4 and not stored:  # in the kind index's windows
                stored.append(store(site_id, arriving))
                derive.catch_up_all(db.session)
            yield window

    stored: list = []

    monkeypatch.setattr(rebuild, "windows", windows_while_events_arrive)
    with app.app_context():
        _spoil(site_id)
    done = app.test_cli_runner().invoke(args=["analytics", "rebuild", "--site", domain])
    assert done.exit_code == 0, done.output
    counted = len([e for e in events if not e.test])  # the summaries before the arrivals
    assert f"Rebuilt {domain}: {counted} events" in done.output
    events += arriving
    counted = len([e for e in events if not e.test])
    assert_as_from_scratch(app, client, site_id, "Asia/Kolkata", events, date(2026, 3, 8))
    monkeypatch.undo()
    with app.app_context():
        _spoil(site_id)
    done = app.test_cli_runner().invoke(args=["analytics", "rebuild", "--all"])
    assert done.exit_code == 0, done.output
    assert f"Rebuilt {domain}: {counted} events" in done.output
    assert_as_from_scratch(app, client, site_id, "Asia/Kolkata", events, date(2026, 3, 8))


# --- the reproductions of the issue, small ------------------------------------------------


def _one_site(app, client, zone: str, events: list[Sent]) -> tuple[int, str]:
    """A derived site in `zone` holding `events`: (its id, its domain)."""
    site_id = new_site(app, zone)
    with app.app_context():
        store(site_id, events)
        domain = db.session.get(Site, site_id).domain
    derive_all(app)
    return site_id, domain


def _sent(serial: str, visitor: str, at: datetime, path: str = "/", kind="pageview") -> Sent:
    """A plain event."""
    name = "paid" if kind == "success" else None
    return Sent(serial, visitor, at, kind, path, name, None, None, False)


def test_events_kept_keep_their_sessions_and_funnel_attempts(engine_app):
    app, client = engine_app
    runner = app.test_cli_runner()
    # Midnight of 03-10 in Kolkata is 18:30 UTC on 03-09: one event before it, two after,
    # all in the UTC hour 18:00.
    events = [
        _sent("k0", "u:1", datetime(2026, 3, 9, 18, 5)),
        _sent("k1", "u:1", datetime(2026, 3, 9, 18, 40)),
        _sent("k2", "u:1", datetime(2026, 3, 9, 18, 45), "/pricing"),
    ]
    site_id, domain = _one_site(app, client, "Asia/Kolkata", events)
    done = runner.invoke(args=["events", "delete", "--site", domain, "--before", "2026-03-10"])
    assert done.exit_code == 0, done.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(Event.site_id == site_id)) == 2
        assert db.session.scalar(select(func.count()).where(VisitorSession.site_id == site_id)) == 1
        quick = [f.id for f in repository.site_funnels(db.session, site_id) if f.name == "Quick"]
    day = urlencode({"from": "2026-03-10", "to": "2026-03-10"})
    answer = client.get(f"/sites/{site_id}/funnels/{quick[0]}.json?{day}").get_json()
    assert [step["visitors"] for step in answer["steps"]] == [1, 0]  # /pricing, then no paid
    assert_as_from_scratch(app, client, site_id, "Asia/Kolkata", events[1:], date(2026, 3, 10))

    # In UTC, a session across the cut-off keeps only its events after it.
    events = [
        _sent("u0", "u:1", datetime(2026, 3, 9, 23, 50), "/docs"),
        _sent("u1", "u:1", datetime(2026, 3, 10, 0, 10)),
        _sent("u2", "u:1", datetime(2026, 3, 10, 0, 20), "/pricing"),
    ]
    site_id, domain = _one_site(app, client, "UTC", events)
    done = runner.invoke(args=["events", "delete", "--site", domain, "--before", "2026-03-10"])
    assert done.exit_code == 0, done.output
    with app.app_context():
        (started, count, paths) = db.session.execute(
            select(VisitorSession.started_at, VisitorSession.events, VisitorSession.paths).where(
                VisitorSession.site_id == site_id
            )
        ).one()
    assert (started, count, paths) == (datetime(2026, 3, 10, 0, 10), 2, "/\n/pricing")
    assert_as_from_scratch(app, client, site_id, "UTC", events[1:], date(2026, 3, 10))
