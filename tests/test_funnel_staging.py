"""A derivation staged from the columnar copy (funnels.staging) against the batch-by-batch
catch-up: the same matched events, attempts (with their links) and excluded counts.

Random events with many ties, anonymous `a:` events and test-key events (test_funnel_store's),
random ordered definitions, sites in zones with offsets of whole and half hours, on SQLite
and PostgreSQL; after late events (staged again over a derivation with rows, or caught up
from the stage), an erasure, a retention cut-off and an identity link; and a stage that a
change overtakes is retired, never swapped in.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import func, select

from datalook import erasure
from datalook.analytics.funnels import derivation, repository, settled_rows, staging
from datalook.analytics.funnels.definition import parse_definition
from datalook.analytics.funnels.models import (
    Funnel,
    FunnelAttempt,
    FunnelDerivation,
    FunnelEvent,
    FunnelExcluded,
)
from datalook.analytics.ranges import local_day
from datalook.extensions import db
from datalook.models import Event, Site
from tests.test_analytics_store import (
    DAY0,
    build_all,
    engine_app,  # noqa: F401 - the fixture, used by name
    link,
    new_site,
    store_events,
)
from tests.test_funnel_store import funnel_events, random_definition
from tests.test_postgres import pg_app  # noqa: F401 - the fixture, used by name

NEVER = 10**15  # a backlog no derivation reaches: batch by batch


def browser_events(seed: int) -> list[dict]:
    """test_funnel_store's events, a browser's id (`c:`) only ever sent by a browser (so
    that a link moves all of its events, as ingestion has it)."""
    return [as_visitor(row, row["visitor_id"]) for row in funnel_events(seed)]


def as_visitor(row: dict, visitor: str) -> dict:
    """An event's row as `visitor`'s (a browser's id: sent by the browser, as its own)."""
    browser = visitor.startswith("c:")
    return {
        **row,
        "visitor_id": visitor,
        "anonymous_id": visitor if browser else None,
        "from_browser": browser or row["from_browser"],
        "success_user_id": visitor[2:] if visitor.startswith("u:") else None,
    }


def ordered_definition(rng: random.Random):
    """A random definition of test_funnel_store's, in ordered mode (strict ones derive
    nothing)."""
    found = random_definition(rng)
    steps = [step.as_json() for step in found.steps]
    return parse_definition(steps, found.as_json()["window"], "ordered")


def rows_of(derivation_id: int) -> tuple:
    """A derivation's rows without their derivation: matched events, attempts, and the
    excluded events per quarter hour."""
    events = FunnelEvent.__table__
    attempts = FunnelAttempt.__table__
    mine = [c for c in attempts.c if c.name != "derivation_id"]
    excluded = dict(
        db.session.execute(
            select(FunnelExcluded.bucket, func.sum(FunnelExcluded.events))
            .where(FunnelExcluded.derivation_id == derivation_id)
            .group_by(FunnelExcluded.bucket)
        ).all()
    )
    return (
        sorted(
            db.session.execute(
                select(*(c for c in events.c if c.name != "derivation_id")).where(
                    events.c.derivation_id == derivation_id
                )
            ).all()
        ),
        sorted(db.session.execute(select(*mine).where(attempts.c.derivation_id == derivation_id))),
        {bucket: int(n) for bucket, n in excluded.items() if n},
    )


def catch_up(monkeypatch, funnel_id: int, staged: bool) -> None:
    """Catch a funnel up, staged from the copy when it is behind (or batch by batch)."""
    monkeypatch.setattr(staging, "STAGE_BACKLOG", 1 if staged else NEVER)
    staging.catch_up_funnel(db.session, funnel_id)


def current_id(funnel_id: int) -> int:
    """The funnel's current derivation."""
    found = derivation.current(db.session, funnel_id)
    assert found is not None
    return found.id


class Pairs:
    """Saved funnels by pairs of one definition: one derived batch by batch, one staged."""

    def __init__(self, site_id: int) -> None:
        self.site_id = site_id
        self.pairs: list[tuple[int, int]] = []

    def add(self, definition) -> None:
        """Save a pair of funnels of `definition`."""
        n = len(self.pairs)
        batched = repository.save(db.session, self.site_id, f"b{n}", definition)
        staged = repository.save(db.session, self.site_id, f"s{n}", definition)
        self.pairs.append((batched.id, staged.id))

    def assert_same(self, monkeypatch, expect_stage: bool | None = None) -> None:
        """Catch every pair up; the two funnels of each have the same rows."""
        for batched, staged in self.pairs:
            catch_up(monkeypatch, batched, staged=False)
            before = current_id(staged)
            catch_up(monkeypatch, staged, staged=True)
            if expect_stage is not None:
                assert (current_id(staged) != before) is expect_stage
            assert rows_of(current_id(staged)) == rows_of(current_id(batched))
        assert not db.session.scalar(  # no stage is left behind
            select(func.count()).where(
                FunnelDerivation.funnel_id < 0, FunnelDerivation.retired_at.is_(None)
            )
        )
        db.session.rollback()


def test_a_staged_derivation_has_the_rows_of_the_batches(engine_app, monkeypatch):  # noqa: F811
    app = engine_app
    sqlite = app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
    seed, tz = (11, "America/New_York") if sqlite else (12, "Asia/Kolkata")  # whole, half hours
    rng = random.Random(seed)
    site_id = new_site(app)
    with app.app_context():
        db.session.get(Site, site_id).timezone = tz
        db.session.commit()
    store_events(app, site_id, browser_events(seed))
    build_all(app)
    with app.app_context():
        pairs = Pairs(site_id)
        for _ in range(3):
            pairs.add(ordered_definition(rng))
        pairs.assert_same(monkeypatch, expect_stage=True)

    # Late events at instants the visitors already have, staged again once the copy has
    # seen them (over a derivation with rows), caught up from the stage before.
    with app.app_context():
        known = db.session.execute(
            select(Event.visitor_id, Event.occurred_at)
            .where(Event.site_id == site_id)
            .order_by(Event.id)
            .limit(25)
        ).all()
    late = [
        {**as_visitor(row, visitor), "occurred_at": at, "is_test": False}
        for row, (visitor, at) in zip(browser_events(seed + 50), known, strict=False)
    ]
    store_events(app, site_id, late)
    with app.app_context():
        pairs.assert_same(monkeypatch, expect_stage=False)  # the copy has not seen them
    store_events(app, site_id, browser_events(seed + 60)[:40])
    build_all(app)
    with app.app_context():
        pairs.assert_same(monkeypatch, expect_stage=True)
        pairs.add(ordered_definition(rng))
        site = db.session.get(Site, site_id)
        assert erasure.erase_visitor(site, "2", "test") > 0
        pairs.assert_same(monkeypatch)
        site = db.session.get(Site, site_id)
        assert erasure.delete_before(site, DAY0 + timedelta(hours=20), "test") > 0
        pairs.add(ordered_definition(rng))
        pairs.assert_same(monkeypatch)
    link(app, site_id, "c:b1", "1")
    build_all(app)
    with app.app_context():
        pairs.add(ordered_definition(rng))
        pairs.assert_same(monkeypatch)


def _overtake_erasure(site_id: int, funnel_id: int) -> None:
    """Erase a visitor while the stage is computed."""
    assert erasure.erase_visitor(db.session.get(Site, site_id), "1", "test") > 0


def _overtake_edit(site_id: int, funnel_id: int) -> None:
    """Edit the funnel's steps and window while the stage is computed."""
    funnel = db.session.get(Funnel, funnel_id)
    steps = [{"event_name": "pageview"}, {"event_name": "success"}]
    repository.save(
        db.session, site_id, funnel.name, parse_definition(steps, "2h", "ordered"), funnel
    )


@pytest.mark.parametrize("overtaker", [_overtake_erasure, _overtake_edit], ids=["erasure", "edit"])
def test_a_stage_overtaken_by_a_change_is_retired(engine_app, overtaker, monkeypatch):  # noqa: F811
    app = engine_app
    site_id = new_site(app)
    store_events(app, site_id, browser_events(21))
    build_all(app)
    compute = settled_rows.compute

    def overtaken(session, *args):
        """The rows, then the change (committed) before they are written."""
        found = compute(session, *args)
        overtaker(site_id, funnel_id)
        return found

    with app.app_context():
        steps = [{"event_name": "pageview", "page_path": "/"}, {"event_name": "success"}]
        definition = parse_definition(steps, "1d", "ordered")
        funnel_id = repository.save(db.session, site_id, "staged", definition).id
        batched = repository.save(db.session, site_id, "batched", definition).id
        monkeypatch.setattr(settled_rows, "compute", overtaken)
        catch_up(monkeypatch, funnel_id, staged=True)
        monkeypatch.setattr(settled_rows, "compute", compute)
        stages = db.session.execute(
            select(FunnelDerivation.funnel_id, FunnelDerivation.retired_at).where(
                FunnelDerivation.funnel_id < 0
            )
        ).all()
        assert len(stages) == 1 and stages[0][1] is not None  # retired, never current
        if overtaker is _overtake_erasure:  # caught up batch by batch instead
            catch_up(monkeypatch, batched, staged=False)
            assert rows_of(current_id(funnel_id)) == rows_of(current_id(batched))
        derivation.purge_retired(db.session)
        assert not db.session.scalar(select(func.count()).where(FunnelDerivation.funnel_id < 0))


def test_a_live_stage_holds_the_funnel_and_a_stale_one_is_retired(app, monkeypatch):
    site_id = new_site(app)
    store_events(app, site_id, browser_events(31))
    build_all(app)
    with app.app_context():
        steps = [{"event_name": "pageview"}, {"event_name": "success"}]
        funnel_id = repository.save(
            db.session, site_id, "f", parse_definition(steps, "1d", "ordered")
        ).id
        found = derivation.current(db.session, funnel_id)
        with derivation.writers_lock(db.session):  # a process that died while staging
            stage_id = derivation.start(db.session, -funnel_id, site_id, "UTC")
            db.session.commit()
        assert staging.staging_elsewhere(db.session, funnel_id)
        catch_up(monkeypatch, funnel_id, staged=True)
        assert derivation.position(db.session, found.id) == 0  # left to the stage
        assert staging.abandon_stale(db.session) == 0
        monkeypatch.setattr(staging, "LEASE", timedelta(0))
        assert staging.abandon_stale(db.session) == 1
        assert not derivation.is_current(db.session, stage_id)
        catch_up(monkeypatch, funnel_id, staged=True)
        assert derivation.position(db.session, current_id(funnel_id)) > 0


@pytest.mark.parametrize("tz", ["Europe/London", "Australia/Lord_Howe", "America/St_Johns"])
def test_local_days_are_the_zones_days(tz):
    """Around the zone's changes of offset, to the microsecond, and elsewhere."""
    zone = ZoneInfo(tz)
    rng = random.Random(tz)
    epoch = datetime(1970, 1, 1)
    moments = [
        datetime(2026, 1, 1) + timedelta(minutes=rng.randrange(366 * 1440)) for _ in range(300)
    ]
    for hour in range(366 * 24):  # every minute of each hour where the offset changes
        at = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=hour)
        if (at - timedelta(hours=1)).astimezone(zone).utcoffset() != at.astimezone(
            zone
        ).utcoffset():
            naive = at.replace(tzinfo=None)
            for minute in range(-60, 1):
                moment = naive + timedelta(minutes=minute)
                moments += [moment + timedelta(microseconds=d) for d in (-1, 0, 1)]
    micros = np.array([(m - epoch) // timedelta(microseconds=1) for m in moments], dtype=np.int64)
    expected = [(local_day(m, zone) - epoch.date()).days for m in moments]
    assert settled_rows.local_days(micros, zone).tolist() == expected


def test_a_failed_write_leaves_the_connection_its_usual_cache(app):
    """write_rows widens SQLite's page cache for its insert only: a failing insert (rows of a
    derivation that does not exist) gives the pooled connection back with its own cache."""
    with app.app_context():
        connection = db.session.connection().connection.driver_connection
        (before,) = connection.execute("PRAGMA cache_size").fetchone()
        with pytest.raises(Exception, match="FOREIGN KEY"):
            staging.write_rows(
                db.session,
                FunnelExcluded.__table__,
                ("derivation_id", "bucket", "events"),
                1,
                [(DAY0, 1)],
            )
        (after,) = connection.execute("PRAGMA cache_size").fetchone()
        assert after == before != -staging.WRITE_CACHE_KIB
        db.session.rollback()
