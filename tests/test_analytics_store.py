"""The analytics store: events_relation reads exactly rows_for's rows, whatever happened to
the events since the segments were built.

Random events (visitors whose visits cross hour and day edges, anonymous `a:` events,
browsers' `c:` ids, test-key events, browser and server events) on SQLite and PostgreSQL;
after each change (a build, late events near a built visit, an erasure, a retention
cut-off, an identity link, a rebuild, a removed file) the relation of random ranges is
compared with rows_for's rows of the same range.
"""

from __future__ import annotations

import os
import random
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from datalook import erasure
from datalook.analytics import cursors, identity, rebuild, worker
from datalook.analytics.store import files, gc, invalidate
from datalook.analytics.store.build import build
from datalook.analytics.store.models import StoreEdge, StoreSegment
from datalook.analytics.store.read import connect, events_relation, usable_segments
from datalook.analytics.store.rows import rows_for
from datalook.config import ConfigError, from_environ
from datalook.extensions import db
from datalook.ingest import links as ingest_links
from datalook.models import LINK_FROM_SERVER, ROLE_OWNER, Event, Site, SiteMember, User, utcnow
from tests.test_postgres import pg_app  # noqa: F401 - the fixture, used by name

DAY0 = datetime(2026, 3, 10)
DAYS = 3
# "Now" for the builds: the fourth day's early hours are today's hours.
NOW = DAY0 + timedelta(days=DAYS, hours=5)
PAGES = ["/", "/pricing", "/docs"]
SOURCES = ["Google", "Newsletter", "", None]
DEVICES = ["desktop", "mobile", ""]


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_app(request, monkeypatch):
    """An app on each database (moved events' ids may leave gaps: final at once here)."""
    monkeypatch.setattr(cursors, "GAP_GRACE", timedelta(0))
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


def new_site(app) -> int:
    """A site with its owner; its id."""
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(User)) or 0
        owner = User(email=f"owner{count}@example.com")
        owner.set_password("correct horse battery")
        site = Site(owner=owner, domain=f"store{count}.example.com")
        db.session.add_all([owner, site])
        db.session.add(SiteMember(site=site, user=owner, role=ROLE_OWNER))
        db.session.commit()
        return site.id


def event(rng: random.Random, at: datetime, visitor: str, browser: str | None = None) -> dict:
    """One event's row: `browser` is the anonymous id of a browser's event."""
    kind = rng.choice(["pageview", "pageview", "click", "success"])
    user = visitor[2:] if visitor.startswith("u:") else None
    return {
        "event_name": kind,
        "name": "paid" if kind == "success" else None,
        "page_path": rng.choice(PAGES),
        "visitor_id": visitor,
        "success_user_id": user,
        "success_value_micros": rng.choice([None, 4_900_000]) if kind == "success" else None,
        "properties": rng.choice([None, '{"plan": "pro"}']),
        "occurred_at": at.replace(microsecond=rng.choice([0, 123456])),
        "received_at": datetime(2026, 3, 1),
        "is_test": rng.random() < 0.05,
        "from_browser": browser is not None or (kind != "success" and rng.random() < 0.7),
        "anonymous_id": browser,
        "source": rng.choice(SOURCES),
        "channel": rng.choice(["Direct", "Email", None]),
        "device": rng.choice(DEVICES),
        "country": rng.choice(["DE", "US", ""]),
    }


def random_events(seed: int, first: datetime = DAY0, days: float = DAYS + 0.2) -> list[dict]:
    """Bursts of events (visits) of a few visitors, many around hour and day edges."""
    rng = random.Random(seed)
    out = []
    for burst in range(60):
        who = rng.choice(["u:1", "u:2", "u:3", "c:b1", "c:b2", None])
        if rng.random() < 0.5:  # around an edge of an hour or a day
            edge = first + timedelta(hours=rng.randrange(int(days * 24)))
            if rng.random() < 0.4:
                edge = edge.replace(hour=0)
            at = edge + timedelta(minutes=rng.uniform(-40, 40))
        else:
            at = first + timedelta(seconds=rng.uniform(0, days * 86400))
        for n in range(rng.randint(1, 5)):
            at += timedelta(minutes=rng.choice([0, 3, 20, 29, 30, 31, 50]))
            visitor = who or f"a:{burst}-{n}"
            browser = visitor if visitor.startswith("c:") else None
            out.append(event(rng, at, visitor, browser))
    return out


def store_events(app, site_id: int, rows: list[dict]) -> None:
    """Insert events as ingestion stores them."""
    with app.app_context():
        db.session.execute(insert(Event), [{"site_id": site_id, **row} for row in rows])
        db.session.commit()


def build_all(app, site_id: int | None = None, now: datetime = NOW):
    """What the fold does: the store's cursor catches up, then every segment is built."""
    with app.app_context():
        invalidate.catch_up(db.session())
        directory = Path(app.config["ANALYTICS_STORE_DIR"])
        return build(db.session(), directory, [site_id] if site_id else None, now=now)


def segments(app, site_id: int) -> list[tuple[datetime, datetime, int]]:
    """(start, end, rows) of the site's valid segments."""
    with app.app_context():
        rows = db.session.execute(
            select(StoreSegment.span_start, StoreSegment.span_end, StoreSegment.events)
            .where(StoreSegment.site_id == site_id)
            .order_by(StoreSegment.span_start)
        ).all()
        db.session.rollback()
        return [tuple(row) for row in rows]


def ranges(rng: random.Random, count: int = 6) -> list[tuple[datetime, datetime]]:
    """Random [start, end) ranges around the events' days, also past their edges."""
    found = [(DAY0 - timedelta(days=1), NOW + timedelta(days=1))]
    for _ in range(count):
        start = DAY0 + timedelta(minutes=rng.randrange(-600, (DAYS + 1) * 1440))
        found.append((start, start + timedelta(minutes=rng.randrange(1, 2 * 1440))))
    return found


def relation_rows(app, site_id: int, start: datetime, end: datetime) -> tuple[list, list]:
    """(events_relation's rows, rows_for's rows) of one range, each sorted by id."""
    with app.app_context():
        con = connect()
        got = events_relation(con, site_id, start, end).to_arrow_table().to_pylist()
        con.close()
        expected = rows_for(site_id, start, end).to_pylist()
        db.session.rollback()
    return sorted(got, key=lambda r: r["id"]), sorted(expected, key=lambda r: r["id"])


def assert_same(app, site_id: int, rng: random.Random) -> None:
    """events_relation gives rows_for's rows over random ranges."""
    for start, end in ranges(rng):
        got, expected = relation_rows(app, site_id, start, end)
        assert got == expected, (start, end)


def late_near_visits(app, site_id: int, rng: random.Random) -> list[dict]:
    """Late events 25 minutes after each signed-in visitor's last event (within GAP of a
    built visit's end) and one just before the second day."""
    with app.app_context():
        visits = db.session.execute(
            select(Event.visitor_id, func.max(Event.occurred_at))
            .where(Event.site_id == site_id, Event.visitor_id.like("u:%"))
            .group_by(Event.visitor_id)
        ).all()
    late = [event(rng, at + timedelta(minutes=25), visitor) for visitor, at in visits]
    late += [event(rng, DAY0 + timedelta(days=1, minutes=-5), "u:9")]
    return [{**row, "is_test": False} for row in late]


def covered(app, site_id: int) -> int:
    """How many segments a read of the whole span would use."""
    with app.app_context():
        directory = Path(app.config["ANALYTICS_STORE_DIR"])
        found = usable_segments(directory, site_id, DAY0 - timedelta(days=1), NOW)
        db.session.rollback()
        return len(found)


def link(app, site_id: int, anonymous_id: str, user_id: str) -> None:
    """Make one link as ingestion does, and apply it as the fold does."""
    with app.app_context():
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            made = [(anonymous_id, user_id, LINK_FROM_SERVER)]
            ingest_links.record(cursor, db.engine.dialect, site_id, made, utcnow())
            raw.commit()
        finally:
            raw.close()
        assert identity.apply_pending(db.session(), utcnow() + identity.LINK_GRACE) > 0


def test_the_relation_is_rows_for_after_every_change(engine_app):
    app = engine_app
    seed = 1 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else 2
    rng = random.Random(seed)
    site_id = new_site(app)
    other = new_site(app)
    store_events(app, site_id, random_events(seed))
    store_events(app, other, random_events(seed + 100))
    assert_same(app, site_id, rng)  # nothing built: every span from the events

    done = build_all(app)
    assert done.built > 0 and done.files > 0
    spans = segments(app, site_id)
    assert any(end - start == timedelta(days=1) for start, end, _ in spans)
    assert any(end - start == timedelta(hours=1) for start, end, _ in spans)  # today's
    assert covered(app, site_id) > 0
    assert_same(app, site_id, rng)

    # Late events into built days, some within GAP of a built visit's edge: read exactly
    # before the store's cursor has seen them, and after.
    store_events(app, site_id, late_near_visits(app, site_id, rng))
    assert_same(app, site_id, rng)
    build_all(app)
    assert_same(app, site_id, rng)

    # An erasure, then a retention cut-off: read exactly at once, and once built again.
    with app.app_context():
        site = db.session.get(Site, site_id)
        assert erasure.erase_visitor(site, "2", "test") > 0
    assert_same(app, site_id, rng)
    build_all(app)
    assert_same(app, site_id, rng)
    with app.app_context():
        site = db.session.get(Site, site_id)
        erasure.delete_before(site, DAY0 + timedelta(hours=30), "test")
    assert_same(app, site_id, rng)
    build_all(app)
    assert_same(app, site_id, rng)

    # An identity link moves a browser's anonymous events to a user.
    link(app, site_id, "c:b1", "1")
    assert_same(app, site_id, rng)
    build_all(app)
    assert covered(app, site_id) > 0
    assert_same(app, site_id, rng)

    # The other site's segments were never touched by this site's changes.
    assert_same(app, other, rng)


def test_rebuild_drops_the_segments_and_a_missing_file_is_read_from_the_events(engine_app):
    app = engine_app
    rng = random.Random(5)
    site_id = new_site(app)
    store_events(app, site_id, random_events(5))
    build_all(app)
    assert segments(app, site_id)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(StoreEdge))
        rebuild.rebuild_site(db.session(), db.engine, app.instance_path, site_id)
        # The edges go with their segments.
        assert db.session.scalar(select(func.count()).select_from(StoreEdge)) == 0
    assert segments(app, site_id) == []
    assert_same(app, site_id, rng)
    build_all(app)
    # A segment's file removed by hand: its span is read from the events.
    directory = Path(app.config["ANALYTICS_STORE_DIR"])
    with app.app_context():
        gc.collect(db.session(), directory, grace=timedelta(0))  # the rebuild's old files
    before_files = len(list(directory.glob(f"{site_id}/*.parquet")))
    removed = next(directory.glob(f"{site_id}/*.parquet"))
    removed.unlink()
    assert_same(app, site_id, rng)
    # The next build builds its span again.
    before = len(segments(app, site_id))
    assert build_all(app).built == 1
    assert len(segments(app, site_id)) == before
    assert len(list(directory.glob(f"{site_id}/*.parquet"))) == before_files
    assert_same(app, site_id, rng)


def test_hours_are_compacted_into_the_day_once_it_ended(app):
    site_id = new_site(app)
    store_events(app, site_id, random_events(7))
    day = DAY0 + timedelta(days=DAYS)  # "today" at NOW: hour segments
    build_all(app, now=NOW + timedelta(hours=10))
    hours = [s for s in segments(app, site_id) if s[0] >= day]
    assert hours and all(end - start == timedelta(hours=1) for start, end, _ in hours)
    # Force the hour-by-hour path for the other days too, then end the day.
    with app.app_context():
        rows = rows_for(site_id, day, day + timedelta(days=1)).num_rows
    build_all(app, now=day + timedelta(days=1, hours=3))
    assert [s for s in segments(app, site_id) if s[0] >= day][0] == (
        day,
        day + timedelta(days=1),
        rows,
    )
    assert_same(app, site_id, random.Random(7))


def test_large_days_are_built_hour_by_hour_then_compacted(app, monkeypatch):
    from datalook.analytics.store import build as builder

    monkeypatch.setattr(builder, "DAY_AT_ONCE_EVENTS", 0)
    site_id = new_site(app)
    store_events(app, site_id, random_events(8))
    with app.app_context():  # within a budget, as the fold process builds
        invalidate.catch_up(db.session())
        directory = Path(app.config["ANALYTICS_STORE_DIR"])
        done = build(db.session(), directory, [site_id], seconds=600, now=NOW)
    assert done.compacted >= DAYS
    days = [s for s in segments(app, site_id) if s[1] - s[0] == timedelta(days=1)]
    assert len(days) >= DAYS
    assert_same(app, site_id, random.Random(8))


def test_a_build_that_meets_an_unseen_event_stores_nothing(app):
    site_id = new_site(app)
    store_events(app, site_id, random_events(9))
    with app.app_context():
        invalidate.catch_up(db.session())
    # An event the store's cursor has not seen, inside a span: its segment is not stored.
    store_events(app, site_id, [event(random.Random(1), DAY0 + timedelta(hours=12), "u:1")])
    with app.app_context():
        directory = Path(app.config["ANALYTICS_STORE_DIR"])
        done = build(db.session(), directory, [site_id], now=NOW)
    assert done.dropped >= 1
    assert (DAY0, DAY0 + timedelta(days=1)) not in [s[:2] for s in segments(app, site_id)]
    assert_same(app, site_id, random.Random(9))


def test_the_fold_process_builds_segments(app):
    site_id = new_site(app)
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    store_events(app, site_id, random_events(3, first=today - timedelta(days=2), days=1.5))
    folder = worker.folder_for(app)
    for _ in range(10):
        folder._tick()  # a tick of `flask analytics fold`
        if any(rows for _, _, rows in segments(app, site_id)):
            break
    assert any(rows for _, _, rows in segments(app, site_id))
    directory = Path(app.config["ANALYTICS_STORE_DIR"])
    assert list(directory.glob(f"{site_id}/*.parquet"))


def test_unused_files_are_removed_after_the_grace_period(app):
    site_id = new_site(app)
    store_events(app, site_id, random_events(4))
    build_all(app)
    directory = Path(app.config["ANALYTICS_STORE_DIR"])
    kept = sorted(directory.glob(f"{site_id}/*"))  # segments and their days' rollups
    assert kept and any(path.name.endswith(files.ROLLUP_SUFFIX) for path in kept)
    old = time.time() - 3600
    orphan = files.segment_path(directory, site_id, DAY0, DAY0 + timedelta(days=1), "f" * 32)
    orphan.write_bytes(b"x")
    os.utime(orphan, (old, old))
    recent = files.segment_path(directory, site_id, DAY0, DAY0 + timedelta(days=1), "e" * 32)
    recent.write_bytes(b"x")
    left = directory / str(site_id) / "partial.parquet.tmp"
    left.write_bytes(b"x")
    os.utime(left, (old, old))
    for path in kept:
        os.utime(path, (old, old))
    with app.app_context():
        assert gc.collect(db.session(), directory) == 2
    assert not orphan.exists() and not left.exists() and recent.exists()
    assert all(path.exists() for path in kept)
    # Once a rebuild drops the rows, their old files go too.
    with app.app_context():
        rebuild.rebuild_site(db.session(), db.engine, app.instance_path, site_id)
        assert gc.collect(db.session(), directory, grace=timedelta(0)) == len(kept) + 1


def test_deleting_a_site_drops_its_segments(app):
    site_id = new_site(app)
    store_events(app, site_id, random_events(6))
    build_all(app)
    assert segments(app, site_id)
    with app.app_context():
        erasure.delete_site(db.session.get(Site, site_id), "test")
    assert segments(app, site_id) == []


def test_the_store_directory_setting(tmp_path):
    assert from_environ({}, tmp_path)["ANALYTICS_STORE_DIR"] == str(tmp_path / "analytics-store")
    chosen = tmp_path / "elsewhere" / "store"
    assert from_environ({"ANALYTICS_STORE_DIR": str(chosen)}, tmp_path)[
        "ANALYTICS_STORE_DIR"
    ] == str(chosen)
    assert chosen.is_dir()
    with pytest.raises(ConfigError, match="ANALYTICS_STORE_DIR must be an absolute path"):
        from_environ({"ANALYTICS_STORE_DIR": "relative/store"}, tmp_path)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="ANALYTICS_STORE_DIR"):
        from_environ({"ANALYTICS_STORE_DIR": str(tmp_path / "a-file")}, tmp_path)


def test_the_build_command(app):
    site_id = new_site(app)
    today = utcnow().replace(hour=0, minute=0, second=0, microsecond=0)
    store_events(app, site_id, random_events(2, first=today - timedelta(days=2), days=1.5))
    with app.app_context():
        domain = db.session.get(Site, site_id).domain
    runner = app.test_cli_runner()
    result = runner.invoke(args=["analytics", "store", "build", "--site", domain])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Built ")
    assert segments(app, site_id)
    result = runner.invoke(args=["analytics", "store", "build"])
    assert result.exit_code != 0 and "give --site DOMAIN or --all" in result.output
    result = runner.invoke(args=["analytics", "store", "gc"])
    assert result.exit_code == 0 and result.output.startswith("Removed 0 files")
