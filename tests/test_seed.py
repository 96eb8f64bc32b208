"""`flask demo seed`: the shape of the generated sessions, and a fully derived site after it,
exactly as ingestion, the identity links and a derivation from scratch leave one."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import cast
from urllib.parse import urlencode

import pytest
from sqlalchemy import String, Table, func, insert, select, text, update
from sqlalchemy import cast as cast_sql

from datalook.analytics import cursors, identity, sessions, worker
from datalook.analytics.funnels import repository
from datalook.analytics.funnels.definition import parse_definition
from datalook.analytics.funnels.derivation import current, cursor_name
from datalook.analytics.funnels.models import DerivedCursor, FunnelAttempt, VisitorSession
from datalook.analytics.rollups import fold as summaries
from datalook.analytics.sessions import SessionEvent
from datalook.cli import demo_derive, demo_write
from datalook.cli import demo_seed as seed
from datalook.extensions import db
from datalook.models import Event, Site, SuccessRule, VisitorLink, utcnow
from tests import test_deletion_oracle as deletion_oracle
from tests.conftest import add_site, sign_up
from tests.funnel_data import E, store
from tests.test_deletion_oracle import HOME, PRICING, derive_all, derived_rows, new_site, reports
from tests.test_funnels_api import save_funnel
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

EVENTS, DAYS, VISITORS = 20_000, 7, 2_000
NAME, PAGE, VISITOR, USER, VALUE, PROPS, AT, BROWSER = 3, 4, 5, 6, 7, 8, 9, 11
ANONYMOUS = -1  # the browser's anonymous id, the last column


@pytest.fixture(scope="module")
def chunks() -> list[seed.Chunk]:
    """One seed's chunks, in order."""
    return list(seed.generate(EVENTS, DAYS, VISITORS))


@pytest.fixture(scope="module")
def rows(chunks) -> list[tuple]:
    """One seed's events rows, every chunk in order."""
    return [row for chunk in chunks for row in demo_write.rows_of(1, 2, chunk)]


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
    made = [c.events for c in seed.generate(events, 2, 50)]
    assert len(made) == chunks and sum(len(c) for c in made) == events
    assert all(a[-1].offset <= b[0].offset for a, b in zip(made, made[1:], strict=False))


def test_kinds_identity_and_property_shares(rows, chunks):
    kinds = Counter(row[2] for row in rows)
    share = {kind: n / EVENTS for kind, n in kinds.items()}
    assert 0.6 < share["pageview"] < 0.85 and 0.08 < share["click"] < 0.25
    assert 0.03 < share["custom"] < 0.15 and 0.01 < share["success"] < 0.1
    browser = [row for row in rows if row[BROWSER]]
    assert {row[2] for row in browser} == {"pageview", "click", "custom"}
    # Every browser event keeps its cookieless id; server events have none and no "a:" id
    # is left (each success names its user).
    assert all(row[ANONYMOUS].startswith("c:") for row in browser)
    assert all(row[ANONYMOUS] is None for row in rows if not row[BROWSER])
    assert all(row[VISITOR] == f"u:{row[USER]}" for row in rows if row[USER])
    links = {link[0]: link for chunk in chunks for link in chunk.links}
    ids = {row[ANONYMOUS] for row in browser}
    assert 0.25 < len(links) / len(ids) < 0.35  # about 30% of the browsers are identified
    assert set(links) <= ids
    for row in browser:  # an anonymous event counts as its user once its id is linked
        link = links.get(row[ANONYMOUS])
        assert row[VISITOR] == (f"u:{link[1]}" if link else row[ANONYMOUS])
        assert row[USER] is None or (link and row[USER] == link[1])
    moved = [row for row in browser if row[USER] is None and row[VISITOR].startswith("u:")]
    assert moved  # anonymous page views before a log-in, joined to the user by the link
    assert {link[2] for link in links.values()} == {"browser", "server"}
    assert 0.35 < sum(row[PROPS] is not None for row in rows) / EVENTS < 0.65


def test_acquisition_as_ingestion_derives_it(rows):
    landing = [row for row in rows if row[BROWSER] and row[2] == "pageview"]
    columns = {name: 12 + n for n, name in enumerate(seed.ACQUISITION)}
    channels = Counter(row[columns["channel"]] for row in landing)
    assert {"Direct", "Organic Search", "Paid Search", "Organic Social", "Email"} <= set(channels)
    assert {"Referral", "Paid Social", "Affiliates", "Display"} <= set(channels)
    campaigns = {
        tuple(row[columns[n]] for n in ("medium", "campaign", "term", "content")) for row in landing
    }
    assert ("cpc", "brand-search", "datalook", "ad-a") in campaigns
    assert {row[columns["device"]] for row in landing} == {"desktop", "mobile", "tablet"}
    assert len({row[columns["country"]] for row in landing}) > 10
    assert {row[columns["browser"]] for row in landing} >= {"Chrome", "Safari", "Firefox"}


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
        per_visitor[row[VISITOR]].append(
            SessionEvent(row[AT], seq, row[2], row[PAGE], row[NAME], row[BROWSER])
        )
    built = [s for v, events in per_visitor.items() for s in sessions.build(v, events)]
    visits = [s for s in built if s.browser_pageviews]
    assert sum(s.events for s in visits) / len(visits) > 3  # sessions of several events
    assert sum(s.path_count > 1 for s in visits) / len(visits) > 0.35  # many bounce
    bounces = sum(s.events == 1 for s in visits) / len(visits)
    assert 0.25 < bounces < 0.55
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
    assert "derived the kind index, sessions and saved funnels" in result.output
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


SEED_FUNNELS = {
    "Checkout": ([HOME, PRICING, {"event_name": "success", "name": "paid-customer"}], "24h"),
    "Signup": (
        [
            {"event_name": "pageview", "page_path": "/signup"},
            {"event_name": "success", "name": "signup"},
        ],
        "2h",
    ),
}
BREAKDOWNS = ["channel", "source", "campaign", "content", "page", "entry_page", "country"]
BREAKDOWNS += ["device", "browser", "os"]
FILTERS = [[], ["channel==Organic Search"], ["channel==Organic Search", "device==mobile"]]


def _scratch_copy(site_id: int, scratch: int) -> None:
    """Store the site's events into `scratch` as ingestion stores them before their links
    are applied (a linked browser's anonymous events under its own id), with the links
    pending, then apply the links as the fold process does."""
    table = cast(Table, Event.__table__)
    links = [
        dict(row)
        for row in db.session.execute(
            select(VisitorLink.__table__).where(VisitorLink.site_id == site_id)
        ).mappings()
    ]
    linked = {link["anonymous_id"] for link in links}
    rows = []
    for row in db.session.execute(
        select(table).where(table.c.site_id == site_id).order_by(table.c.id)
    ).mappings():
        copy = {k: v for k, v in row.items() if k != "id"} | {"site_id": scratch}
        if row["from_browser"] and row["success_user_id"] is None:
            if row["anonymous_id"] in linked:
                copy["visitor_id"] = row["anonymous_id"]
        rows.append(copy)
    db.session.execute(insert(table), rows)
    db.session.execute(
        insert(VisitorLink), [link | {"site_id": scratch, "pending": True} for link in links]
    )
    rules = select(SuccessRule.name, SuccessRule.first_seen_at, SuccessRule.origin)
    db.session.execute(  # ingestion registers the rules as their first successes arrive
        insert(SuccessRule),
        [
            {"site_id": scratch, "name": name, "first_seen_at": at, "origin": origin}
            for name, at, origin in db.session.execute(rules.where(SuccessRule.site_id == site_id))
        ],
    )
    db.session.commit()
    while identity.pending_links(db.session()):
        identity.apply_pending(db.session(), utcnow() + identity.LINK_GRACE)


def _acquisition_reports(client, site_id: int, first: date, last: date) -> dict:
    """breakdown.json of each dimension, stats.json under each filter set and
    attribution.json of each model, over [first, last]."""
    out: dict = {}
    dates = [("from", first.isoformat()), ("to", last.isoformat())]
    for filters in FILTERS:
        args = dates + [("filter", f) for f in filters]
        stats = client.get(f"/sites/{site_id}/stats.json?{urlencode(args)}").get_json()
        out[f"stats {filters}"] = stats
        for dimension in BREAKDOWNS if not filters else ["source", "page", "country"]:
            query = urlencode([*args, ("dimension", dimension), ("limit", "100")])
            answer = client.get(f"/sites/{site_id}/breakdown.json?{query}")
            assert answer.status_code == 200, answer.get_data(as_text=True)
            out[f"breakdown {dimension} {filters}"] = answer.get_json()
    for model in ("first", "last", "linear"):
        for dimension in ("source", "channel"):
            query = urlencode(
                [*dates, ("rule", "paid-customer"), ("model", model), ("dimension", dimension)]
            )
            answer = client.get(f"/sites/{site_id}/attribution.json?{query}")
            assert answer.status_code == 200, answer.get_data(as_text=True)
            out[f"attribution {model} {dimension}"] = answer.get_json()
    for answer in out.values():
        del answer["site"]  # the site's own name
    return out


def _two_sites(app, client, monkeypatch) -> tuple[int, int]:
    """A site to seed and a site to feed from scratch, both with the demo's funnels."""
    sign_up(client)
    # Applying a link stores its events again after a gap of ids; in one thread no insert
    # is in flight, so a PostgreSQL cursor need not wait at it.
    monkeypatch.setattr(cursors, "GAP_GRACE", timedelta(0))
    monkeypatch.setattr(deletion_oracle, "FUNNELS", SEED_FUNNELS)  # what reports() reads
    seeded = new_site(app, "Europe/Berlin", funnels=False)
    scratch = new_site(app, "Europe/Berlin", funnels=False)
    with app.app_context():
        for site_id in (seeded, scratch):
            for name, (steps, window) in SEED_FUNNELS.items():
                repository.save(
                    db.session, site_id, name, parse_definition(steps, window, "ordered")
                )
    return seeded, scratch


def assert_as_ingested_and_derived_from_scratch(app, client, seeded: int, scratch: int):
    """The seeded site's derived rows and reports equal those of `scratch`, fed the same
    events as ingestion stores them, their links applied, and derived from scratch."""
    with app.app_context():
        links = db.session.scalar(select(func.count()).where(VisitorLink.site_id == seeded))
        assert links > 20
        # Events are compared by an event_id of their own (the same on both sites).
        serial = "e" + cast_sql(Event.id, String)
        db.session.execute(update(Event).where(Event.site_id == seeded).values(event_id=serial))
        db.session.commit()
        _scratch_copy(seeded, scratch)
    derive_all(app)
    with app.app_context():
        got, want = derived_rows(seeded), derived_rows(scratch)
    for table in want:
        assert got[table] == want[table], table
    assert got == want
    today = utcnow().date()
    days = [(today - timedelta(days=4), today), (today - timedelta(days=1), today)]
    assert reports(client, seeded, days) == reports(client, scratch, days)
    first, last = days[0]
    mine = _acquisition_reports(client, seeded, first, last)
    assert mine == _acquisition_reports(client, scratch, first, last)
    assert mine["attribution first source"]["rows"]  # identified visits earned credit
    assert mine["stats ['channel==Organic Search', 'device==mobile']"]["totals"]["visits"] > 0


def test_a_seed_leaves_what_ingestion_links_and_a_derivation_from_scratch_would(
    any_app, monkeypatch
):
    app, client = any_app, any_app.test_client()
    seeded, scratch = _two_sites(app, client, monkeypatch)
    with app.app_context():
        domain = db.session.get(Site, seeded).domain
    result = app.test_cli_runner().invoke(
        args=["demo", "seed", "--site", domain, "--events", "3000", "--days", "3"]
    )
    assert result.exit_code == 0, result.output
    # It folded and filed every chunk as it wrote it, and stored the sessions itself: the
    # ordinary derivation found none of them to add.
    assert "folding 3,000 of them into the summaries and filing 3,000" in result.output
    left = result.output.split("saved funnels (")[1].split(")")[0]
    assert "sessions" not in left and "kinds" not in left
    assert_as_ingested_and_derived_from_scratch(app, client, seeded, scratch)


def test_a_fold_during_the_seed_and_a_second_seed_leave_the_same(any_app, monkeypatch):
    app, client = any_app, any_app.test_client()
    seeded, scratch = _two_sites(app, client, monkeypatch)
    # An event of another site that nothing folded yet: the summaries' cursor stands
    # before the seed's first chunk, which the seed then leaves to the fold.
    store(app, new_site(app, "UTC", funnels=False), [E("u:other", utcnow() - timedelta(hours=1))])
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            # Ids taken and never stored (rolled-back inserts): the kind index's cursor
            # stands before a final gap, which the seed's first chunk steps over.
            db.session.execute(text("SELECT setval('events_id_seq', nextval('events_id_seq') + 4)"))
            db.session.commit()
    monkeypatch.setattr(seed, "CHUNK", 1000)
    rederived = []
    derive_again = sessions.rederive
    monkeypatch.setattr(
        sessions, "rederive", lambda *a, **k: rederived.append(a[1]) or derive_again(*a, **k)
    )

    chunks = []

    def fold_meanwhile(written: int) -> None:
        """As a running fold process would: after the first chunk, derive sessions and fold
        a part of the chunk; after the second, fold the rest."""
        chunks.append(written)
        if len(chunks) == 1:
            sessions.catch_up(db.session())
            summaries.catch_up(db.engine, app.instance_path, max_batches=1, batch=500)
        elif len(chunks) == 2:
            summaries.catch_up(db.engine, app.instance_path)

    with app.app_context():
        # The fold took some of the new events: the seed's own sessions cannot be stored
        # as they are; the site's sessions are derived again instead (the catch-up does
        # the rest).
        deriver = demo_derive.ChunkDeriver()
        demo_write.write(
            db.engine, db.session(), seeded, None, 3000, 3, 300, fold_meanwhile, deriver
        )
        assert rederived == [seeded]
        # Only the last chunk found the summaries' cursor just before it; the kind index
        # (caught up first) filed every chunk as it was written.
        assert len(chunks) == 3
        assert (deriver.folded, deriver.filed) == (3000 - chunks[1], 3000)
        # A second seed into a site with events leaves the sessions to the derivation.
        demo_write.write(db.engine, db.session(), seeded, None, 1000, 3, 300)
        db.session.remove()
    assert_as_ingested_and_derived_from_scratch(app, client, seeded, scratch)


def test_the_seeds_session_rows_are_the_derivations_rows(rows):
    per_visitor = defaultdict(list)
    for seq, row in enumerate(rows):
        per_visitor[row[VISITOR]].append(
            SessionEvent(row[AT], seq, row[2], row[PAGE], row[NAME], row[BROWSER])
        )
    built = [s for v, events in per_visitor.items() for s in sessions.build(v, events)]
    assert len(built) > 1000
    assert [demo_write.session_row(1, s) for s in built] == [sessions.to_row(1, s) for s in built]


def test_the_rows_stored_on_sqlite_are_the_rows_with_their_times_as_text(chunks):
    for chunk in chunks[:2]:
        rows = demo_write.rows_of(1, 2, chunk)
        stored, times = demo_write.stored_rows(1, 2, chunk)
        assert times == [row[AT] for row in rows]
        as_text = [row[AT].isoformat(" ", "microseconds") for row in rows]
        assert stored == [(*r[:AT], t, t, *r[AT + 2 :]) for r, t in zip(rows, as_text, strict=True)]
