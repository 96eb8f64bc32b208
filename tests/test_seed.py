"""`flask demo seed`: the shape of the generated sessions, and a fully derived site after it."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from datalook.analytics import sessions, worker
from datalook.analytics.funnels.derivation import current, cursor_name
from datalook.analytics.funnels.models import DerivedCursor, FunnelAttempt, VisitorSession
from datalook.analytics.rollups import fold as summaries
from datalook.analytics.sessions import SessionEvent
from datalook.cli import demo_seed as seed
from datalook.extensions import db
from datalook.models import Event, utcnow
from tests.conftest import add_site, sign_up
from tests.funnel_data import E, store
from tests.test_funnels_api import save_funnel
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

EVENTS, DAYS, VISITORS = 20_000, 7, 2_000
NAME, PAGE, VISITOR, USER, VALUE, PROPS, AT = 3, 4, 5, 6, 7, 8, 9


@pytest.fixture(scope="module")
def rows() -> list[tuple]:
    """One seed's rows, every chunk in order."""
    return [row for chunk in seed.generate(1, 2, EVENTS, DAYS, VISITORS) for row in chunk]


def test_exactly_the_events_asked_for_in_time_order_over_the_days(rows):
    now = utcnow()
    assert len(rows) == EVENTS
    times = [row[AT] for row in rows]
    assert times == sorted(times)
    assert now - timedelta(days=DAYS, seconds=5) <= times[0] and times[-1] <= now


@pytest.mark.parametrize(
    ("events", "chunks"), [(1, 1), (seed.CHUNK, 1), (seed.CHUNK + 1, 2), (3 * seed.CHUNK, 3)]
)
def test_counts_and_chunks_at_the_edges(events, chunks):
    made = list(seed.generate(1, None, events, 2, 50))
    assert len(made) == chunks and sum(len(c) for c in made) == events
    assert all(a[-1][AT] <= b[0][AT] for a, b in zip(made, made[1:], strict=False))


def test_kinds_anonymous_and_property_shares(rows):
    kinds = Counter(row[2] for row in rows)
    share = {kind: n / EVENTS for kind, n in kinds.items()}
    assert 0.6 < share["pageview"] < 0.8 and 0.1 < share["click"] < 0.25
    assert 0.04 < share["custom"] < 0.15 and 0.01 < share["success"] < 0.1
    anonymous = [row for row in rows if row[USER] is None]
    assert 0.08 < len(anonymous) / EVENTS < 0.25
    # Without a success_user_id each event is its own "a:" visitor, as ingestion does.
    assert all(row[VISITOR].startswith("a:") for row in anonymous)
    assert len({row[VISITOR] for row in anonymous}) == len(anonymous)
    assert all(row[VISITOR] == f"u:{row[USER]}" for row in rows if row[USER])
    assert 0.35 < sum(row[PROPS] is not None for row in rows) / EVENTS < 0.65


def test_successes_carry_rules_and_values_where_they_happen(rows):
    successes = [row for row in rows if row[2] == "success"]
    by_rule = defaultdict(list)
    for row in successes:
        by_rule[row[NAME]].append(row)
    assert set(by_rule) == {"signup", "paid-customer", "upgrade"}
    assert {row[PAGE] for row in by_rule["paid-customer"]} == {"/checkout/success"}
    assert all(row[VALUE] in seed.RULES[1][2] for row in by_rule["paid-customer"])
    assert all(row[VALUE] in seed.RULES[2][2] for row in by_rule["upgrade"])
    assert all(row[VALUE] is None for row in by_rule["signup"])
    assert all(row[NAME] in seed.CUSTOM for row in rows if row[2] == "custom")
    assert all(row[NAME] is None for row in rows if row[2] in ("pageview", "click"))


def test_visitors_walk_sessions_of_plausible_pages(rows):
    per_visitor = defaultdict(list)
    for seq, row in enumerate(rows):
        if row[USER]:
            per_visitor[row[VISITOR]].append(SessionEvent(row[AT], seq, row[2], row[PAGE], None))
    built = [s for v, events in per_visitor.items() for s in sessions.build(v, events)]
    assert sum(s.events for s in built) / len(built) > 3  # sessions of several events
    assert sum(s.path_count > 1 for s in built) / len(built) > 0.5
    assert sum(len(built_of) > 1 for built_of in per_visitor.values()) > 0  # visitors return
    steps = Counter((a, b) for s in built for a, b in zip(s.head, s.head[1:], strict=False))
    # Pages follow the site's links: pricing leads to sign-up, never checkout/success to docs.
    assert steps[("/", "/pricing")] > steps[("/", "/checkout")]
    assert steps[("/pricing", "/signup")] > 0 and steps[("/checkout/success", "/docs")] == 0
    # (A returning visitor's next walk may start within 30 minutes: the sessions join.)
    linked = sum(n for (a, b), n in steps.items() if b in seed.NEXT[a])
    assert linked / sum(steps.values()) > 0.95


def _cursor(name: str) -> int:
    """A derived cursor's position (0 when it does not exist)."""
    return db.session.scalar(select(DerivedCursor.last_event_id).where(DerivedCursor.name == name))


def _derivation_cursor(funnel_id: int) -> str:
    """The cursor of a saved funnel's current derivation."""
    return cursor_name(current(db.session, funnel_id).id)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request):
    """The app on SQLite, then on PostgreSQL."""
    return request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")


def test_seed_leaves_the_site_folded_and_derived(any_app):
    app, client = any_app, any_app.test_client()
    sign_up(client)
    owner = add_site(client)
    funnel = save_funnel(
        client,
        owner,
        "Demo",
        [
            {"event_name": "pageview", "page_path": "/"},
            {"event_name": "pageview", "page_path": "/pricing"},
            {"event_name": "pageview", "page_path": "/signup"},
            {"event_name": "success", "name": "signup"},
        ],
    )
    result = app.test_cli_runner().invoke(
        args=["demo", "seed", "--site", "example.com", "--events", "4000", "--days", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "derived sessions and saved funnels" in result.output
    # What the fold did, in plain words (not "folded 0", which read like a failure).
    assert "added 4,000 events to the report summaries" in result.output
    with app.app_context():
        newest = db.session.scalar(select(func.max(Event.id)))
        assert _cursor(sessions.CURSOR) == newest and _cursor(_derivation_cursor(funnel)) == newest
        assert summaries.catch_up(db.engine, app.instance_path) == 0  # nothing left to fold
        assert sessions.catch_up(db.session) == 0
        assert db.session.scalar(select(func.count()).select_from(VisitorSession)) > 100
        derivation = current(db.session, funnel).id
        attempts = select(func.count()).where(FunnelAttempt.derivation_id == derivation)
        assert db.session.scalar(attempts) > 0
    journeys = client.get(f"/sites/{owner}/journeys.json?period=7d").get_json()
    assert journeys["sessions_total"] > 100
    assert any(len(j["paths"]) > 2 for j in journeys["journeys"])


def test_the_fold_process_derives_sessions_and_saved_funnels(app, client, owner):
    funnel = save_funnel(client, owner, "Two", [{"event_name": "pageview", "page_path": "/"}] * 2)
    now = utcnow().replace(microsecond=0)
    store(app, owner, [E("u:1", now), E("u:1", now + timedelta(seconds=5), path="/pricing")])
    folder = worker.folder_for(app)
    folder._tick()  # one tick of `flask analytics fold`
    with app.app_context():
        newest = db.session.scalar(select(func.max(Event.id)))
        assert _cursor(sessions.CURSOR) == newest and _cursor(_derivation_cursor(funnel)) == newest
        stored = db.session.scalars(select(VisitorSession)).all()
        assert [(s.visitor_id, s.events, s.paths) for s in stored] == [("u:1", 2, "/\n/pricing")]
