"""Funnel and journey benchmark: `python -m bench.funnels [--events N] [--database URL]`.

Seeds N events (default 10 000 000) over 90 days into a temporary database (SQLite in a
temporary folder, or a fresh database on the PostgreSQL server of --database, dropped
afterwards): one site, N/10 visitors with sessions of 1 to 12 events over realistic paths,
a fifth of the events without a visitor, success events with values. Then derives the
sessions and a saved 4-step funnel (timed once: the initial catch-up), and times through
the app (Flask test client, logged in, whole request) over Last 30 days:

1. the saved 4-step funnel   GET /sites/<id>/funnels/<fid>.json?period=30d
2. the same funnel unsaved   GET /sites/<id>/funnel.json?period=30d&step=...
3. the journeys report       GET /sites/<id>/journeys.json?period=30d

Each is run --runs times after one warm-up; p50 and p99 are printed. A benchmark, not a test:
run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import create_engine, insert, text

TARGETS_MS = {"saved funnel": 300, "unsaved funnel": 3000, "journeys": 500}
DAYS = 90
CHUNK = 50_000
PAGES = [
    ("/", 30),
    ("/pricing", 14),
    ("/features", 8),
    ("/signup", 7),
    ("/login", 6),
    ("/app", 10),
    ("/app/settings", 3),
    ("/checkout", 4),
    ("/checkout/success", 2),
    *((f"/docs/page-{i}", 1) for i in range(20)),
    *((f"/blog/post-{i}", 1) for i in range(30)),
]
STEPS = [
    {"event_name": "pageview", "page_path": "/", "name": None, "property": None},
    {"event_name": "pageview", "page_path": "/pricing", "name": None, "property": None},
    {"event_name": "pageview", "page_path": "/signup", "name": None, "property": None},
    {"event_name": "success", "page_path": None, "name": "paid-customer", "property": None},
]


def _session_events(rng: random.Random, visitor: str, start: datetime, paths, weights):
    """One session: 1 to 12 events a few seconds to minutes apart, maybe a conversion."""
    count = min(12, int(rng.expovariate(1 / 5)) + 1)
    at = start
    out = []
    for _ in range(count):
        path = rng.choices(paths, weights)[0]
        out.append((visitor, at, "pageview", path, None, None))
        at += timedelta(seconds=rng.randint(5, 400))
    if rng.random() < 0.04:
        out.append((visitor, at, "success", "/checkout/success", "paid-customer", 9_990_000))
    return out


def seed(engine, site_id: int, key_id: int, events: int, seed_value: int = 14) -> int:
    """Insert about `events` events over the last 90 days, in time order, with executemany."""
    from datalook.models import Event, utcnow

    rng = random.Random(seed_value)
    paths = [p for p, _ in PAGES]
    weights = [w for _, w in PAGES]
    visitors = max(10, events // 10)
    now = utcnow().replace(microsecond=0)
    first_day = now - timedelta(days=DAYS)
    per_day = events / DAYS
    written = 0
    table = Event.__table__
    with engine.begin() as connection:
        for day in range(DAYS):
            day_start = first_day + timedelta(days=day)
            target = int(per_day * (day + 1)) - written
            rows = []
            while len(rows) < target:
                start = day_start + timedelta(seconds=rng.randrange(86_400))
                if rng.random() < 0.2:  # an event without a visitor (no user id)
                    rows.append((f"a:{uuid.uuid4().hex}", start, "pageview", "/", None, None))
                    continue
                visitor = f"u:user{int(rng.paretovariate(1.2) * 7919) % visitors}"
                rows.extend(_session_events(rng, visitor, start, paths, weights))
            rows.sort(key=lambda r: r[1])
            rows = rows[:target]
            for offset in range(0, len(rows), CHUNK):
                connection.execute(
                    insert(table),
                    [
                        {
                            "site_id": site_id,
                            "api_key_id": key_id,
                            "event_name": name,
                            "name": rule,
                            "page_path": path,
                            "visitor_id": visitor,
                            "success_user_id": visitor[2:] if visitor.startswith("u:") else None,
                            "success_value_micros": value,
                            "properties": None,
                            "stripped_keys": None,
                            "event_id": None,
                            "occurred_at": at,
                            "received_at": min(at, now),
                        }
                        for visitor, at, name, path, rule, value in rows[offset : offset + CHUNK]
                    ],
                )
            written += len(rows)
    return written


def _time(client, url: str, runs: int) -> tuple[float, float]:
    """p50 and p99 (ms) of GET url over `runs` runs after one warm-up."""
    response = client.get(url)
    assert response.status_code == 200, response.get_data(as_text=True)[:500]
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - began) * 1000)
        assert response.status_code == 200
    samples.sort()
    p99 = samples[min(len(samples) - 1, round(0.99 * (len(samples) - 1)))]
    return statistics.median(samples), p99


def run(events: int, database: str | None, runs: int) -> int:
    """Seed, derive, time; print the table. Exit status 0 when every target is met."""
    from flask_migrate import upgrade

    from datalook.analytics import funnel_store, sessions
    from datalook.analytics.funnels import parse_definition
    from datalook.app import create_app
    from datalook.extensions import db
    from datalook.models import ApiKey, Site, User

    workdir = Path(tempfile.mkdtemp(prefix="datalook-funnels-bench-"))
    overrides = {}
    admin = None
    name = None
    if database:
        name = f"datalook_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(database, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        overrides["SQLALCHEMY_DATABASE_URI"] = database.rsplit("/", 1)[0] + f"/{name}"
    try:
        os.environ["DATALOOK_INSTANCE_PATH"] = str(workdir)
        app = create_app({"TESTING": True, **overrides})
        with app.app_context():
            upgrade()
            user = User(email="bench@example.com")
            user.set_password("correct horse battery")
            site = Site(owner=user, domain="bench.example.com")
            db.session.add_all([user, site])
            db.session.commit()
            key = ApiKey(site_id=site.id, key_id="benchkey", name="bench", secret_hash="0" * 64)
            db.session.add(key)
            db.session.commit()
            site_id, user_id, key_pk = site.id, user.id, key.id
            began = time.perf_counter()
            written = seed(db.engine, site_id, key_pk, events)
            seeded_s = time.perf_counter() - began
            definition = parse_definition(STEPS, "24h", "ordered")
            funnel = funnel_store.save(db.session, site_id, "Bench funnel", definition)
            funnel_id = funnel.id
            began = time.perf_counter()
            sessions.catch_up(db.session)
            sessions_s = time.perf_counter() - began
            began = time.perf_counter()
            funnel_store.catch_up(db.session, funnel, definition)
            funnel_s = time.perf_counter() - began
        client = app.test_client()
        with client.session_transaction() as session:
            session["_user_id"] = str(user_id)
            session["_fresh"] = True
        step_args = urlencode(
            [("step", json.dumps(s)) for s in STEPS] + [("window", "24h"), ("period", "30d")]
        )
        scenarios = {
            "saved funnel": f"/sites/{site_id}/funnels/{funnel_id}.json?period=30d",
            "unsaved funnel": f"/sites/{site_id}/funnel.json?{step_args}",
            "journeys": f"/sites/{site_id}/journeys.json?period=30d",
        }
        engine_name = "PostgreSQL" if database else "SQLite"
        print(f"\n{engine_name}, {written:,} events over {DAYS} days (seeded in {seeded_s:.0f} s)")
        print(f"initial derivation: sessions {sessions_s:.1f} s, saved funnel {funnel_s:.1f} s")
        print(f"{'scenario (Last 30 days)':<26}{'p50 ms':>10}{'p99 ms':>10}{'target':>10}")
        met = True
        for label, url in scenarios.items():
            p50, p99 = _time(client, url, runs)
            ok = p50 <= TARGETS_MS[label]
            met &= ok
            verdict = "ok" if ok else "MISS"
            print(f"{label:<26}{p50:>10.0f}{p99:>10.0f}{TARGETS_MS[label]:>8} {verdict}")
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        return 0 if met else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if admin is not None:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


def main() -> None:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events to seed")
    parser.add_argument(
        "--database",
        help="a PostgreSQL URL of an existing database to create the bench database beside, "
        "e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test (default: SQLite)",
    )
    parser.add_argument("--runs", type=int, default=10, help="timed runs per scenario")
    args = parser.parse_args()
    sys.exit(run(args.events, args.database, args.runs))


if __name__ == "__main__":
    main()
