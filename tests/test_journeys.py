"""Sessions (derived incrementally, late events included), journeys.json and the next step."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from datalook.analytics import cursors, sessions
from datalook.analytics.funnels.models import VisitorSession
from datalook.analytics.sessions import SessionEvent, build, encode_steps
from datalook.extensions import db
from tests.conftest import add_site, sign_up
from tests.funnel_data import E, store

T0 = datetime(2026, 3, 10, 9, 0)
RANGE = {"from": "2026-03-10", "to": "2026-03-10"}


def m(minutes: float) -> datetime:
    """`minutes` after T0."""
    return T0 + timedelta(minutes=minutes)


def se(minutes: float, path: str, seq: int, event_name="pageview", name=None) -> SessionEvent:
    """A session event."""
    return SessionEvent(m(minutes), seq, event_name, path, name)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([se(0, "/", 1), se(30, "/a", 2)], [["/", "/a"]]),  # exactly 30 minutes: same session
        ([se(0, "/", 1), se(30.01, "/a", 2)], [["/"], ["/a"]]),  # a little more: split
        ([se(0, "/", 1), se(1, "/", 2), se(2, "/a", 3), se(3, "/", 4)], [["/", "/a", "/"]]),
        ([se(5, "/b", 2), se(0, "/a", 1)], [["/a", "/b"]]),  # order of arrival does not matter
    ],
)
def test_sessions_split_at_30_minute_gaps_and_collapse_repeats(events, expected):
    assert [s.head for s in build("u:1", events)] == expected


def test_long_sessions_keep_the_first_and_last_ten_steps():
    events = [se(i, f"/p{i}", i + 1) for i in range(14)]
    (session,) = build("u:1", events)
    assert session.path_count == 14
    assert session.head == [f"/p{i}" for i in range(10)]
    assert session.tail == [f"/p{i}" for i in range(4, 14)]


def test_encoded_cuts_cut_the_first_n_steps():
    text, cuts = encode_steps(["/", "/pricing", "/a"])
    offsets = [int(cuts[i : i + 5]) for i in range(0, 50, 5)]
    assert [text[: offsets[n - 1]] for n in (1, 2, 3, 4)] == [
        "/",
        "/\n/pricing",
        "/\n/pricing\n/a",
        "/\n/pricing\n/a",
    ]


@pytest.mark.parametrize(
    ("rows", "may_reorder", "taken"),
    [
        ([(11, 0), (12, 0), (14, 0)], False, 3),  # SQLite: gaps are final
        ([(11, 0), (12, 0), (14, 0)], True, 2),  # PostgreSQL: a young gap may still fill
        ([(11, 0), (12, 0), (14, 10)], True, 3),  # an old gap was a rolled-back insert
        ([(13, 0)], True, 0),  # a young gap right after the cursor
        ([(11, 0), (12, 0)], True, 2),
    ],
)
def test_cursor_never_skips_a_young_gap_where_ids_commit_out_of_order(rows, may_reorder, taken):
    now = datetime(2026, 3, 10, 12, 0, 0)
    stamped = [(event_id, now - timedelta(seconds=age)) for event_id, age in rows]
    assert cursors.safe_prefix(10, stamped, now, may_reorder) == taken


def _stored_sessions(app) -> list[tuple]:
    """Every stored session as comparable tuples."""
    with app.app_context():
        rows = db.session.execute(select(VisitorSession.__table__)).all()
        return sorted(
            (r.visitor_id, r.started_at, r.ended_at, r.events, r.paths, r.tail, r.rules)
            for r in rows
        )


def _rebuilt(events: list[E]) -> list[tuple]:
    """Sessions computed from scratch from all the events (the independent expectation)."""
    out = []
    by_visitor: dict[str, list[SessionEvent]] = {}
    for seq, e in enumerate(events):
        if e.visitor.startswith("a:"):
            continue
        by_visitor.setdefault(e.visitor, []).append(
            SessionEvent(e.at, seq, e.event_name, e.path, e.name)
        )
    for visitor, evs in by_visitor.items():
        for s in build(visitor, evs):
            row = sessions.to_row(1, s)
            out.append(
                (
                    visitor,
                    s.started_at,
                    s.ended_at,
                    s.events,
                    row["paths"],
                    row["tail"],
                    row["rules"],
                )
            )
    return sorted(out)


def test_incremental_sessions_equal_a_rebuild_with_growing_sessions_and_late_events(app, owner):
    rng = random.Random(7)
    paths = ["/", "/pricing", "/docs", "/signup", "/checkout"]
    sent: list[E] = []
    for batch in range(6):
        events = []
        for _ in range(40):
            visitor = rng.choice(["u:1", "u:2", "u:3", "a:x", "c:4"])
            # Mostly recent events; some late ones, up to 7 days back.
            minutes = (
                batch * 90 + rng.randint(0, 120) - (rng.random() < 0.2) * rng.randint(0, 7 * 1440)
            )
            kind = rng.choice(["pageview"] * 4 + ["success"])
            events.append(
                E(
                    visitor,
                    m(minutes),
                    kind,
                    rng.choice(paths),
                    "paid" if kind == "success" else None,
                )
            )
        store(app, owner, events)
        sent += events
        with app.app_context():
            sessions.catch_up(db.session)
        assert _stored_sessions(app) == _rebuilt(sent)


def test_late_event_merges_two_sessions(app, owner):
    store(app, owner, [E("u:1", m(0)), E("u:1", m(50), path="/b")])
    with app.app_context():
        sessions.catch_up(db.session)
    assert len(_stored_sessions(app)) == 2
    store(app, owner, [E("u:1", m(25), path="/a")])
    with app.app_context():
        sessions.catch_up(db.session)
    (merged,) = _stored_sessions(app)
    assert merged[4] == "/\n/a\n/b"


@pytest.fixture
def site(client):
    """A logged-in owner's site."""
    sign_up(client)
    return add_site(client)


def _journey_events() -> list[E]:
    """Three sessions of two visitors, one anonymous visit, one session the next day."""
    return [
        E("u:1", m(0)),
        E("u:1", m(1), path="/pricing"),
        E("u:1", m(2), "success", "/checkout/success", "paid", 5_000_000),
        E("u:2", m(0)),
        E("u:2", m(1), path="/pricing"),
        E("u:2", m(2), path="/pricing"),
        E("u:1", m(120)),  # a second session of u:1
        E("u:1", m(121), path="/pricing"),
        E("u:1", m(122), "success", "/checkout/success", "paid", 5_000_000),
        E("a:9", m(5), path="/x"),
        E("u:3", m(24 * 60)),  # the next day
    ]


def test_journeys_json(client, app, site):
    store(app, site, _journey_events())
    body = client.get(f"/sites/{site}/journeys.json?{urlencode(RANGE)}").get_json()
    assert body == {
        "journeys": [
            {
                "paths": ["/", "/pricing", "/checkout/success"],
                "sessions": 2,
                "visitors": 1,
                "converted": 2,
            },
            {"paths": ["/", "/pricing"], "sessions": 1, "visitors": 1, "converted": 0},
        ],
        "sessions_total": 3,
        # Every stored event is counted (the last one received, as stored here, in 2000).
        "freshness": {
            "complete": True,
            "folded_until": "2000-01-01T00:00:00Z",
            "pending_events": 0,
        },
    }
    two = client.get(f"/sites/{site}/journeys.json?{urlencode({**RANGE, 'steps': 2})}").get_json()
    assert two["journeys"] == [
        {"paths": ["/", "/pricing"], "sessions": 3, "visitors": 2, "converted": 2}
    ]
    ruled = client.get(f"/sites/{site}/journeys.json?{urlencode({**RANGE, 'rule': 'paid'})}")
    assert ruled.get_json()["sessions_total"] == 2
    ending = urlencode({**RANGE, "end": "/checkout/success", "steps": 2})
    ended = client.get(f"/sites/{site}/journeys.json?{ending}").get_json()
    assert ended["journeys"] == [
        {"paths": ["/pricing", "/checkout/success"], "sessions": 2, "visitors": 1, "converted": 2}
    ]
    started = client.get(f"/sites/{site}/journeys.json?{urlencode({**RANGE, 'start': '/pricing'})}")
    assert started.get_json()["sessions_total"] == 0


def test_next_step_view(client, app, site):
    store(app, site, _journey_events())
    body = client.get(
        f"/sites/{site}/journeys/next.json?{urlencode({**RANGE, 'path': '/pricing'})}"
    ).get_json()
    assert body["next"] == [
        {"path": "/checkout/success", "left": False, "sessions": 2, "visitors": 1},
        {"path": None, "left": True, "sessions": 1, "visitors": 1},
    ]
    page = client.get(f"/sites/{site}/journeys/?{urlencode({**RANGE, 'path': '/pricing'})}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<em>left</em>" in html and "/checkout/success" in html


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ({"steps": "0"}, "steps"),
        ({"steps": "11"}, "steps"),
        ({"steps": "x"}, "steps"),
        ({"start": "pricing"}, "start"),
        ({"end": "x"}, "end"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
    ],
)
def test_bad_journey_parameters(client, site, args, field):
    response = client.get(f"/sites/{site}/journeys.json?{urlencode(args)}")
    assert response.status_code == 400
    assert response.get_json()["error"]["errors"][0]["field"] == field


def test_concurrent_catch_ups_derive_each_event_once(app, owner, monkeypatch):
    import threading

    from datalook.analytics.funnels import derivation, repository
    from datalook.analytics.funnels.definition import parse_definition
    from datalook.analytics.funnels.models import Funnel, FunnelEvent

    monkeypatch.setattr(cursors, "BATCH", 7)  # many small passes, so that the two interleave
    rng = random.Random(11)
    events = [
        E(rng.choice(["u:1", "u:2", "u:3"]), m(rng.randint(0, 600)), path=rng.choice(["/", "/a"]))
        for _ in range(150)
    ]
    store(app, owner, events)
    steps = [
        {"event_name": "pageview", "page_path": "/"},
        {"event_name": "pageview", "page_path": "/a"},
    ]
    definition = parse_definition(steps, "1h", "ordered")
    with app.app_context():
        funnel = repository.save(db.session, owner, "F", definition)
        funnel_id = funnel.id
    failures = []

    def work():
        """One process's catch-ups, as a report would run them."""
        try:
            with app.app_context():
                sessions.catch_up(db.session)
                mine = db.session.get(Funnel, funnel_id)
                derivation.catch_up(db.session, mine, definition)
        except Exception as exc:  # reported below: a thread's exception is otherwise lost
            failures.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert _stored_sessions(app) == _rebuilt(events)
    with app.app_context():
        matched = db.session.scalars(select(FunnelEvent.event_id)).all()
    assert len(matched) == len(set(matched)) == len(events)


@pytest.mark.parametrize("path", ["", "pricing"])
def test_next_step_needs_a_page_path(client, site, path):
    response = client.get(f"/sites/{site}/journeys/next.json?{urlencode({'path': path})}")
    assert response.status_code == 400
    assert response.get_json()["error"]["errors"][0]["field"] == "path"


def test_journeys_page_states_its_semantics_and_lists_journeys(client, app, site):
    store(app, site, _journey_events())
    html = client.get(f"/sites/{site}/journeys/?{urlencode(RANGE)}").get_data(as_text=True)
    assert "no gap over 30 minutes" in html
    assert "<code>/checkout/success</code>" in html
    assert "3 sessions in this range match." in html
