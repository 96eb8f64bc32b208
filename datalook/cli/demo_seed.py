"""Realistic demo events written at bulk speed (`flask demo seed`).

Visitors come back in sessions: a session enters the site on a landing page and walks a few
plausible pages (home, pricing, sign-up, the app, checkout, docs, blog posts), each page
view followed at times by clicks or custom events; sign-ups, upgrades and checkouts end in
success events with values. A share of the events carries no `success_user_id` (anonymous
visitors); half the sessions carry properties (plan, source). Each session arrives from one
place (search engines, social sites, a newsletter and ad campaigns with UTM parameters, or
directly) on one device, browser and OS from one country, its acquisition columns derived as
ingestion derives them (acquisition.sources and channels). Events are generated in time
order over the last D days and written in large executemany batches (COPY on PostgreSQL)
through SQLAlchemy Core; the CLI then folds them into the summaries and derives sessions
and saved funnels, so the first report reads a fully derived site.
"""

from __future__ import annotations

import json
import random
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from itertools import accumulate
from typing import cast

from sqlalchemy import Engine, Table, insert

from ..acquisition import channels, sources
from ..models import SuccessRule, utcnow
from ..sql.connections import write_lock

CHUNK = 50_000
POSTS = [f"/blog/post-{n}" for n in range(1, 19)]
# Where a page leads next (weights); "" ends the session. Plausible walks make the journeys
# and funnels of the demo meaningful (home -> pricing -> sign-up -> app -> checkout).
NEXT: dict[str, dict[str, float]] = {
    "/": {
        "/pricing": 30,
        "/features": 18,
        "/blog": 12,
        "/docs": 10,
        "/login": 10,
        "/signup": 8,
        "/about": 4,
        "": 8,
    },
    "/pricing": {
        "/signup": 30,
        "/features": 12,
        "/checkout": 12,
        "/": 12,
        "/login": 8,
        "/docs": 6,
        "": 20,
    },
    "/features": {"/pricing": 40, "/signup": 15, "/": 15, "/docs": 12, "": 18},
    "/signup": {"/app": 60, "/pricing": 10, "/": 8, "": 22},
    "/login": {"/app": 85, "/": 5, "": 10},
    "/app": {"/app/settings": 20, "/checkout": 15, "/docs/api": 15, "/pricing": 8, "": 42},
    "/app/settings": {"/app": 50, "/checkout": 20, "": 30},
    "/checkout": {"/checkout/success": 45, "/pricing": 20, "/app": 10, "": 25},
    "/checkout/success": {"/app": 60, "": 40},
    "/docs": {"/docs/start": 45, "/docs/api": 25, "/": 10, "": 20},
    "/docs/start": {"/docs/api": 40, "/signup": 20, "/docs": 15, "": 25},
    "/docs/api": {"/docs": 30, "/docs/start": 15, "/signup": 10, "": 45},
    "/blog": {**{post: 4 for post in POSTS}, "/": 10, "": 20},
    "/about": {"/": 40, "/pricing": 30, "": 30},
    **{post: {"/blog": 30, "/": 15, "/signup": 10, "/pricing": 10, "": 35} for post in POSTS},
}
ENTRY: dict[str, float] = {
    "/": 40,
    "/pricing": 8,
    "/docs": 8,
    "/login": 12,
    "/features": 4,
    "/app": 8,
}
ENTRY |= {post: 20 / (rank + 1) for rank, post in enumerate(POSTS)}
PAGES = sorted(NEXT)
RULES = [("signup", 0.5, []), ("paid-customer", 0.3, [9_990_000, 29_000_000, 99_000_000])]
RULES += [("upgrade", 0.2, [20_000_000, 70_000_000])]
PLANS = ["free", "starter", "pro", "enterprise"]
SOURCES = ["google", "newsletter", "direct", "twitter", "partner"]
CUSTOM = ["search", "video-play", "download", "share"]
ANONYMOUS_SHARE = 0.15  # sessions of visitors without a success_user_id
PROPERTIES_SHARE = 0.5  # sessions whose events carry properties
CLICK_SHARE, CUSTOM_SHARE = 0.25, 0.12  # after a page view
UPGRADE_SHARE = 0.15  # page views of /app/settings that end in an upgrade
MAX_PAGES = 15
_COLUMNS = [
    "site_id",
    "api_key_id",
    "event_name",
    "name",
    "page_path",
    "visitor_id",
    "success_user_id",
    "success_value_micros",
    "properties",
    "occurred_at",
    "received_at",
    "from_browser",
]
# Where a session comes from: (weight, referrer, utm_source, utm_medium, utm_campaign).
ARRIVALS: list[tuple[float, str | None, str | None, str | None, str | None]] = [
    (30, None, None, None, None),
    (24, "https://www.google.com/", None, None, None),
    (4, "https://duckduckgo.com/", None, None, None),
    (3, "https://www.bing.com/", None, None, None),
    (6, "https://news.ycombinator.com/item", None, None, None),
    (5, "https://t.co/", None, None, None),
    (4, "https://www.reddit.com/r/SaaS/", None, None, None),
    (3, "https://github.com/", None, None, None),
    (6, None, "newsletter", "email", "spring-launch"),
    (4, None, "google", "cpc", "brand-search"),
    (3, None, "linkedin", "paid_social", "q2-retargeting"),
    (3, "https://partner-blog.example/", "partner", "referral", "partner-program"),
]
# (weight, device, browser, browser version, OS, OS version).
DEVICES = [
    (26, "desktop", "Chrome", "124", "Windows", "10"),
    (14, "desktop", "Chrome", "124", "macOS", "14"),
    (9, "desktop", "Safari", "17", "macOS", "14"),
    (6, "desktop", "Firefox", "125", "Windows", "10"),
    (3, "desktop", "Firefox", "125", "Linux", ""),
    (5, "desktop", "Edge", "124", "Windows", "11"),
    (17, "mobile", "Mobile Safari", "17", "iOS", "17"),
    (14, "mobile", "Chrome Mobile", "124", "Android", "14"),
    (3, "tablet", "Mobile Safari", "17", "iOS", "17"),
]
COUNTRIES: dict[str, float] = {"US": 30, "DE": 10, "GB": 9, "IN": 8, "FR": 6, "CA": 5}
COUNTRIES |= {"BR": 4, "NL": 3}
COUNTRIES |= {"JP": 3, "AU": 3, "ES": 2, "SE": 2, "PL": 2, "IT": 2}
_ACQUISITION = [
    "source",
    "channel",
    "medium",
    "campaign",
    "term",
    "content",
    "referrer",
    "device",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "country",
]
_COLUMNS += _ACQUISITION


def _table(weights: dict[str, float]) -> tuple[list[str], list[float]]:
    """Choices and cumulative weights for a draw by bisect (cheaper than rng.choices)."""
    return list(weights), list(accumulate(weights.values()))


def _where_from(arrival: tuple) -> tuple[str | None, ...]:
    """The source, channel, medium, campaign, term, content and stored referrer of an
    arrival, as ingestion derives them ("" where the visit has no such value)."""
    _, referrer, utm_source, medium, campaign = arrival
    stored = sources.referrer_of(referrer)
    host = sources.counted_host(stored)
    source = sources.source_of(stored, utm_source, ())
    channel = channels.channel_of(source, medium, campaign, (), host)
    return (source, channel, medium or "", campaign or "", "", "", stored if host else None)


_ARRIVALS = [_where_from(arrival) for arrival in ARRIVALS]
_ARRIVAL_WEIGHTS = list(accumulate(arrival[0] for arrival in ARRIVALS))
_DEVICE_WEIGHTS = list(accumulate(device[0] for device in DEVICES))
_COUNTRY_TABLE = _table(COUNTRIES)


def _pick(rng: random.Random, cumulative: Sequence[float]) -> int:
    """The index of one weighted draw."""
    return bisect(cumulative, rng.random() * cumulative[-1])


def arrival_columns(rng: random.Random) -> tuple:
    """One session's acquisition columns (in _ACQUISITION order)."""
    where = _ARRIVALS[_pick(rng, _ARRIVAL_WEIGHTS)]
    device = DEVICES[_pick(rng, _DEVICE_WEIGHTS)][1:]
    return (*where, *device, _draw(rng, _COUNTRY_TABLE))


_NEXT = {page: _table(weights) for page, weights in NEXT.items()}
_ENTRY = _table(ENTRY)
_PROPS = [
    [json.dumps({"plan": plan, "source": source}, separators=(",", ":")) for source in SOURCES]
    for plan in PLANS
]


def _draw(rng: random.Random, table: tuple[list[str], list[float]]) -> str:
    """One weighted draw."""
    choices, cumulative = table
    return choices[bisect(cumulative, rng.random() * cumulative[-1])]


# A generated event: offset (s), event_name, name, page, user id, value (micros), properties,
# the session's acquisition columns.
Generated = tuple[float, str, str | None, str, str | None, int | None, str | None, tuple]


def session_events(rng: random.Random, visitors: int, at: float) -> list[Generated]:
    """One session's events from offset `at` (seconds): (offset, event_name, name, page,
    user id or None, value in micros or None, properties or None, acquisition columns)."""
    user = None
    if rng.random() >= ANONYMOUS_SHARE:
        # Heavy-tailed: a few visitors come back often, most rarely.
        user = int(rng.paretovariate(1.2) * 7919) % visitors
    user_id = f"user-{user}" if user is not None else None
    props = None
    if rng.random() < PROPERTIES_SHARE:
        props = _PROPS[(user or 0) % len(PLANS)][rng.randrange(len(SOURCES))]
    came = arrival_columns(rng)
    out: list[Generated] = []
    page, previous = _draw(rng, _ENTRY), ""
    for _ in range(MAX_PAGES):
        out.append((at, "pageview", None, page, user_id, None, props, came))
        roll = rng.random()
        if roll < CLICK_SHARE:
            out.append((at + rng.uniform(1, 30), "click", None, page, user_id, None, props, came))
        elif roll < CLICK_SHARE + CUSTOM_SHARE:
            name = CUSTOM[rng.randrange(len(CUSTOM))]
            custom = (at + rng.uniform(1, 30), "custom", name, page, user_id, None, props, came)
            out.append(custom)
        success: tuple[str, int | None] | None = None
        if page == "/checkout/success":
            success = ("paid-customer", rng.choice(RULES[1][2]))
        elif page == "/app" and previous == "/signup":
            success = ("signup", None)
        elif page == "/app/settings" and rng.random() < UPGRADE_SHARE:
            success = ("upgrade", rng.choice(RULES[2][2]))
        if success:
            won = (at + 31, "success", success[0], page, user_id, success[1], props, came)
            out.append(won)
        at += rng.uniform(35, 400)
        previous, page = page, _draw(rng, _NEXT[page])
        if not page:
            break
    return out


def generate(
    site_id: int, key_id: int | None, events: int, days: int, visitors: int, seed: int = 1
) -> Iterator[list[tuple]]:
    """Chunks of event rows (tuples in _COLUMNS order), in time order over the last days.

    The span is cut into slices of about CHUNK events; sessions start uniformly within a
    slice and their events past its end wait for the next slice, so every chunk is in time
    order and follows the previous one. Exactly `events` rows in all.
    """
    rng = random.Random(seed)  # noqa: S311 - demo data, not a secret
    end = utcnow()
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    chunks = max(1, -(-events // CHUNK))
    made = 0
    carried: list[Generated] = []
    for index in range(chunks):
        slice_start, slice_end = span * index / chunks, span * (index + 1) / chunks
        target = events * (index + 1) // chunks - made
        last = index == chunks - 1
        now_rows = [e for e in carried if e[0] < slice_end]
        carried = [e for e in carried if e[0] >= slice_end]
        while len(now_rows) < target:
            for event in session_events(
                rng, visitors, slice_start + rng.random() * (slice_end - slice_start)
            ):
                (now_rows if event[0] < slice_end else carried).append(event)
        now_rows.sort(key=lambda e: e[0])
        if last:  # exactly `events`; the carried rest would lie in the future
            now_rows = now_rows[: max(0, target)]
        made += len(now_rows)
        yield [_row(site_id, key_id, start, event, rng) for event in now_rows]


def _row(site_id: int, key_id: int | None, start: datetime, event: tuple, rng) -> tuple:
    """An events row (in _COLUMNS order) of a generated event."""
    offset, kind, name, page, user_id, micros, props, came = event
    at = start + timedelta(seconds=offset)
    # Without a success_user_id every event is its own anonymous visitor, as ingestion does.
    visitor = f"u:{user_id}" if user_id else f"a:{rng.getrandbits(64):016x}"
    # Page views, clicks and custom events come from the browser snippet (so they make
    # visits), success events from the backend.
    browser = kind != "success"
    row = (site_id, key_id, kind, name, page, visitor, user_id, micros, props, at, at, browser)
    return (*row, *came)


def _copy_rows(connection, rows: list[tuple]) -> None:
    """PostgreSQL: COPY the rows into events (far faster than INSERT)."""
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(f"COPY events ({', '.join(_COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# Fixed column names; the values are bound as parameters.
_NAMES, _MARKS = ", ".join(_COLUMNS), ", ".join("?" * len(_COLUMNS))
_SQLITE_INSERT = f"INSERT INTO events ({_NAMES}) VALUES ({_MARKS})"  # noqa: S608


def _sqlite_row(row: tuple) -> tuple:
    """A row with its times as the text SQLAlchemy stores in SQLite (microseconds always)."""
    at = row[9].isoformat(" ", "microseconds")
    return (*row[:9], at, at, *row[11:])  # from_browser and acquisition as they are


def write(
    engine: Engine,
    site_id: int,
    key_id: int | None,
    events: int,
    days: int,
    visitors: int,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the generated events; return how many."""
    written = 0
    for rows in generate(site_id, key_id, events, days, visitors):
        with write_lock(engine.dialect, engine.url.database), engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                _copy_rows(connection, rows)
            else:
                # SQLite: plain tuples, times already in SQLAlchemy's text form (its per-row
                # parameter processing cost more than the INSERT itself).
                connection.exec_driver_sql(_SQLITE_INSERT, [_sqlite_row(row) for row in rows])
        written += len(rows)
        if progress:
            progress(written)
    with engine.begin() as connection:
        known = set(
            connection.execute(
                SuccessRule.__table__.select()
                .with_only_columns(SuccessRule.name)
                .where(SuccessRule.site_id == site_id)
            ).scalars()
        )
        fresh = [name for name, _, _ in RULES if name not in known]
        if fresh:
            first = utcnow() - timedelta(days=days)
            connection.execute(
                insert(cast(Table, SuccessRule.__table__)),
                [{"site_id": site_id, "name": n, "first_seen_at": first} for n in fresh],
            )
    return written
