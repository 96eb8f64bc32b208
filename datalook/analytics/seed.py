"""Realistic demo events written at bulk speed (`flask demo seed`).

Pageviews, clicks and custom events over a few dozen pages, successes over a few rules
with values, returning visitors (`success_user_id`s) and anonymous events, properties:
generated in time order over the last D days and written in large executemany batches
(COPY on PostgreSQL) through SQLAlchemy Core, then folded into the summaries.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import cast

from sqlalchemy import Engine, Table, insert

from ..models import SuccessRule, utcnow
from ..sql.connections import write_lock

CHUNK = 50_000
PAGES = [
    "/",
    "/pricing",
    "/features",
    "/signup",
    "/login",
    "/checkout",
    "/checkout/success",
    "/docs",
    "/docs/start",
    "/docs/api",
    "/blog",
    "/about",
    *[f"/blog/post-{n}" for n in range(1, 19)],
]
PAGE_WEIGHTS = [1 / (rank + 1) for rank in range(len(PAGES))]
RULES = [("signup", 0.5, []), ("paid-customer", 0.3, [9_990_000, 29_000_000, 99_000_000])]
RULES += [("upgrade", 0.2, [20_000_000, 70_000_000])]
PLANS = ["free", "starter", "pro", "enterprise"]
SOURCES = ["google", "newsletter", "direct", "twitter", "partner"]
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
]


def generate(
    site_id: int, key_id: int | None, events: int, days: int, visitors: int, seed: int = 1
) -> Iterator[list[tuple]]:
    """Chunks of event rows (tuples in _COLUMNS order), in time order over the last days."""
    rng = random.Random(seed)  # noqa: S311 - demo data, not a secret
    end = utcnow()
    start = end - timedelta(days=days)
    span = (end - start).total_seconds()
    chunks = max(1, -(-events // CHUNK))
    made = 0
    for index in range(chunks):
        n = min(CHUNK, events - made)
        made += n
        slice_start = span * index / chunks
        offsets = sorted(slice_start + rng.random() * span / chunks for _ in range(n))
        kinds = rng.choices(["pageview", "click", "custom", "success"], [70, 17, 9, 4], k=n)
        pages = rng.choices(PAGES, PAGE_WEIGHTS, k=n)
        users = [rng.randrange(visitors) if rng.random() < 0.85 else None for _ in range(n)]
        rows = []
        for offset, kind, page, user in zip(offsets, kinds, pages, users, strict=True):
            at = start + timedelta(seconds=offset)
            name = micros = None
            if kind == "success":
                name, _, values = rng.choices(RULES, [r[1] for r in RULES])[0]
                micros = rng.choice(values) if values else None
            props = None
            if rng.random() < 0.5:
                props = json.dumps(
                    {"plan": PLANS[(user or 0) % 4], "source": rng.choice(SOURCES)},
                    separators=(",", ":"),
                )
            user_id = f"user-{user}" if user is not None else None
            visitor = f"u:{user_id}" if user_id else f"a:{rng.getrandbits(64):016x}"
            rows.append(
                (site_id, key_id, kind, name, page, visitor, user_id, micros, props, at, at)
            )
        yield rows


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
    return (*row[:9], at, at)


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
