"""journeys.json against an independent computation from the events sent, on a range that
straddles the sessions' boundary (kept counts of earlier sessions plus fresh ones), before
and after late events and an erasure change earlier sessions; on SQLite and PostgreSQL."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest

from datalook.analytics import sessions
from datalook.erasure import erase_visitor
from datalook.extensions import db
from datalook.models import Site, utcnow
from tests.conftest import add_site, sign_up
from tests.funnel_data import E, set_timezone, store
from tests.test_postgres import pg_app  # noqa: F401 (the fixture)

PATHS = ["/", "/pricing", "/signup", "/docs", "/app", "/checkout"]
GAP = timedelta(minutes=30)


def _events(rng: random.Random, today: datetime) -> list[E]:
    """Bursts of page views and successes of 30 visitors over the last five days."""
    out: list[E] = []
    for n in range(30):
        visitor = f"u:{n}" if n % 7 else f"a:{n}"
        for _ in range(rng.randint(1, 4)):
            at = today - timedelta(days=rng.randint(0, 4), minutes=rng.randint(0, 600))
            for _ in range(rng.randint(1, 6)):
                at += timedelta(minutes=rng.choice([0, 1, 5, 29, 30, 31]))
                if rng.random() < 0.15:
                    out.append(E(visitor, at, "success", "/checkout", rng.choice(["paid", None])))
                else:
                    out.append(E(visitor, at, path=rng.choice(PATHS)))
    return [e for e in out if e.at < utcnow()]


def _sessions(events: list[E]) -> list[dict]:
    """The sessions of the events, computed here from the definition."""
    per_visitor: dict[str, list[tuple[int, E]]] = defaultdict(list)
    for seq, e in enumerate(events):
        if not e.visitor.startswith("a:"):
            per_visitor[e.visitor].append((seq, e))
    out = []
    for visitor, items in per_visitor.items():
        items.sort(key=lambda pair: (pair[1].at, pair[0]))
        current: dict | None = None
        for _, e in items:
            if current is None or e.at - current["end"] > GAP:
                current = {
                    "visitor": visitor,
                    "start": e.at,
                    "end": e.at,
                    "paths": [],
                    "rules": set(),
                }
                out.append(current)
            current["end"] = e.at
            if not current["paths"] or current["paths"][-1] != e.path:
                current["paths"].append(e.path)
            if e.event_name == "success" and e.name:
                current["rules"].add(e.name)
    return out


def _expected(found: list[dict], start: datetime, end: datetime, args: dict) -> dict:
    """The journeys answer for `args`, from the sessions."""
    steps = int(args.get("steps", 5))
    groups: dict[tuple, dict] = {}
    total = 0
    for s in found:
        if not start <= s["start"] < end:
            continue
        if "start" in args and s["paths"][0] != args["start"]:
            continue
        if "end" in args and s["paths"][-1] != args["end"]:
            continue
        if "rule" in args and args["rule"] not in s["rules"]:
            continue
        total += 1
        key = tuple(s["paths"][-steps:] if "end" in args else s["paths"][:steps])
        group = groups.setdefault(key, {"sessions": 0, "visitors": set(), "converted": 0})
        group["sessions"] += 1
        group["visitors"].add(s["visitor"])
        group["converted"] += 1 if s["rules"] else 0
    ranked = sorted(groups.items(), key=lambda kv: (-kv[1]["sessions"], "\n".join(kv[0])))
    return {
        "journeys": [
            {
                "paths": list(key),
                "sessions": g["sessions"],
                "visitors": len(g["visitors"]),
                "converted": g["converted"],
            }
            for key, g in ranked[:100]
        ],
        "sessions_total": total,
    }


# The freshness of a report that counts every stored event (received, as stored here, at
# 2000-01-01).
COMPLETE = {"complete": True, "folded_until": "2000-01-01T00:00:00Z", "pending_events": 0}

QUERIES = [
    {},
    {"steps": 1},
    {"steps": 2},
    {"steps": 3},
    {"steps": 10},
    {"start": "/pricing"},
    {"end": "/checkout", "steps": 2},
    {"end": "/", "steps": 10},
    {"rule": "paid"},
    {"rule": "paid", "steps": 2, "start": "/"},
]


def _check_all(client, site_id: int, events: list[E], first, last) -> None:
    """Every query, twice (the second one reads the kept counts), equals the oracle."""
    found = _sessions(events)
    start = datetime.combine(first, datetime.min.time())
    end = datetime.combine(last + timedelta(days=1), datetime.min.time())
    dates = {"from": first.isoformat(), "to": last.isoformat()}
    for args in QUERIES:
        expected = _expected(found, start, end, args)
        for _ in range(2):
            response = client.get(f"/sites/{site_id}/journeys.json?{urlencode({**dates, **args})}")
            assert response.status_code == 200
            body = response.get_json()
            assert body.pop("freshness") == COMPLETE, args  # every stored event is counted
            assert body == expected, args


def run_oracle(client, app, site_id: int, seed: int) -> None:
    """Random events; the answers; late events and an erasure; the answers again."""
    set_timezone(app, site_id, "UTC")
    now = utcnow()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    rng = random.Random(seed)
    events = _events(rng, today)
    store(app, site_id, events)
    first, last = (today - timedelta(days=4)).date(), today.date()
    _check_all(client, site_id, events, first, last)
    # Late events fill gaps of earlier sessions (merging them), and new ones arrive.
    visitor_events = [e for e in events if e.visitor.startswith("u:")]
    late = [
        E(e.visitor, e.at + timedelta(minutes=20), path=rng.choice(PATHS))
        for e in rng.sample(visitor_events, 8)
    ]
    late.append(E("u:1", now - timedelta(minutes=1), path="/pricing"))
    store(app, site_id, late)
    events += late
    _check_all(client, site_id, events, first, last)
    # Erasing a visitor takes their sessions out of every answer at once.
    with app.app_context():
        site = db.session.get(Site, site_id)
        erase_visitor(site, "2", actor="test")
    events = [e for e in events if e.visitor != "u:2"]
    _check_all(client, site_id, events, first, last)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_journeys_equal_an_independent_computation(client, app, seed):
    sign_up(client)
    run_oracle(client, app, add_site(client), seed)


def test_journeys_equal_an_independent_computation_on_postgresql(pg_app):  # noqa: F811
    client = pg_app.test_client()
    sign_up(client)
    run_oracle(client, pg_app, add_site(client), 4)
    with pg_app.app_context():
        assert sessions.catch_up(db.session) == 0
