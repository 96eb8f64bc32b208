"""stats.json with filters reads the range and its previous period in one statement
(reports.period_figures): its edges against the count event by event (tests/python_reports.py)
and the chart's buckets against bisect.

A previous period without events, filters that match nothing, hourly buckets over the day
of 25 hours, weekly and monthly buckets across a clock change, the buckets found by an ASOF
join instead of arithmetic, and the same figures read from built Parquet segments as from
the events; an `==` or `!=` filter written on the stored column keeps what the filter
keeps.
"""

from __future__ import annotations

import bisect
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from sqlalchemy import insert

from datalook.acquisition.dimensions import NONE, NOT_RECORDED, Filter, parse_filter
from datalook.analytics import cursors
from datalook.analytics.ranges import DateRange, zone
from datalook.analytics.reports import filtered as sql_filtered
from datalook.analytics.reports import period_figures
from datalook.analytics.reports.bucket_cells import MAX_CELLS, cells_of
from datalook.analytics.reports.raw_events import stored_value
from datalook.analytics.reports.store_sql import Scope, compare_stored
from datalook.analytics.store import invalidate
from datalook.analytics.store.build import build
from datalook.analytics.store.read import connect, events_relation, usable_segments
from datalook.extensions import db
from datalook.models import Event, Site
from tests import python_reports as python
from tests.test_store_reports import ZONE, _store

# Filters: none, on a visit's and an event's stored column (== and != with sentinels, read
# from the column itself), contains, a property, and ones that match no event.
FILTER_SETS = [
    [],
    ["channel==Organic Search"],
    ["channel==Organic Search", "device==mobile"],
    ["source!=(none)", "city==(not recorded)"],
    ["page==/pricing", "campaign!=(not recorded)"],
    ["campaign=~strasse", "prop:plan!=pro"],
    ["source==no such source"],
    ["page=~no such page"],
    ["prop:missing==x"],
]


def _check(site: Site, span: DateRange, texts: list[str]) -> None:
    """The dashboard's figures and previous chart, and stats.json's, equal the oracle's."""
    filters = [parse_filter(text) for text in texts]
    want = python.stats(site, span, filters)
    previous = python.series(site, span.previous(), filters)
    note = f"{span.first}..{span.last} {texts}"
    assert sql_filtered.stats_and_previous_series(site, span, filters) == (want, previous), note
    assert sql_filtered.stats(site, span, filters) == want, note


def _read(site: Site, span: DateRange, texts: list[str], max_cells: int):
    """period_figures.read over both periods, both charted, with at most max_cells cells."""
    before = span.previous()
    charted = [*before.buckets(), *span.buckets()]
    con = connect()
    try:
        relation = events_relation(con, site.id, before.start_utc, span.end_utc)
        scope = Scope(con, relation, [parse_filter(text) for text in texts])
        return period_figures.read(
            scope, span.start_utc, before.start_utc, charted, max_cells=max_cells
        )
    finally:
        con.close()


def test_the_edges_of_one_reading_equal_the_count_event_by_event(app):
    site_id = _store(app, 5)  # events from 2026-03-13 over three weeks, in ZONE
    tz = zone(ZONE)
    spans = {
        # No event in the previous period (hourly and daily buckets).
        "hour": DateRange(date(2026, 3, 13), date(2026, 3, 14), tz),
        "day": DateRange(date(2026, 3, 13), date(2026, 4, 3), tz),
        # Weekly (the first one partial) and monthly buckets across the spring change,
        # the previous period holding some of the events.
        "week": DateRange(date(2026, 3, 25), date(2026, 7, 2), tz),
        "month": DateRange(date(2026, 3, 20), date(2027, 4, 30), tz),
    }
    with app.app_context():
        site = db.session.get(Site, site_id)
        for unit, span in spans.items():
            assert span.granularity() == unit
            for texts in FILTER_SETS:
                _check(site, span, texts)
        # No event at all: every figure 0, every bucket there.
        empty = DateRange(date(2025, 1, 1), date(2025, 1, 31), tz)
        _check(site, empty, ["channel==Organic Search"])
        assert sql_filtered.stats(site, empty, []).totals.events == 0


def test_the_buckets_joined_by_time_equal_the_buckets_by_arithmetic(app):
    site_id = _store(app, 6)
    tz = zone(ZONE)
    with app.app_context():
        site = db.session.get(Site, site_id)
        for first, last in [((3, 28), (3, 29)), ((3, 24), (4, 2)), ((3, 25), (7, 2))]:
            span = DateRange(date(2026, *first), date(2026, *last), tz)
            for texts in FILTER_SETS[:4]:
                by_cells = _read(site, span, texts, MAX_CELLS)
                assert by_cells.series or texts
                assert _read(site, span, texts, 0) == by_cells, (span, texts)


@pytest.mark.parametrize(
    "zone_name",
    ["UTC", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "America/St_Johns"],
)
def test_a_time_s_cell_gives_the_bucket_bisect_gives(zone_name):
    tz = zone(zone_name)
    rng = random.Random(zone_name)
    # Around the autumn and spring changes, hourly to monthly buckets, both periods.
    for first, last in [
        (date(2026, 10, 25), date(2026, 10, 25)),
        (date(2026, 3, 28), date(2026, 3, 29)),
        (date(2026, 3, 1), date(2026, 4, 15)),
        (date(2026, 1, 7), date(2026, 12, 30)),
        (date(2025, 1, 1), date(2026, 12, 31)),
    ]:
        span = DateRange(first, last, tz)
        starts = [b.start_utc for b in [*span.previous().buckets(), *span.buckets()]]
        cells = cells_of(starts)
        assert cells is not None and cells.width_us > 0
        origin = datetime(1970, 1, 1) + timedelta(microseconds=cells.origin_us)
        assert origin == starts[0]
        moments = [s + timedelta(microseconds=d) for s in starts for d in (-1, 0, 1)]
        moments += [starts[0] + (span.end_utc - starts[0]) * rng.random() for _ in range(300)]
        moments += [span.end_utc - timedelta(microseconds=1)]
        for moment in moments:
            if moment < starts[0]:
                continue
            offset = (moment - origin) // timedelta(microseconds=1)
            cell = min(offset // cells.width_us, len(cells.buckets) - 1)
            assert cells.buckets[cell] == bisect.bisect_right(starts, moment) - 1, moment
    # Past the limit: no cells (the report joins the buckets by time instead).
    span = DateRange(date(2024, 1, 1), date(2026, 12, 31), tz)
    assert cells_of([b.start_utc for b in span.buckets()], limit=10) is None
    assert cells_of([]) is None
    assert cells_of([datetime(2026, 1, 1)] * 2).buckets == [1]  # the last of equal starts


def _autumn_events(seed: int) -> list[dict]:
    """Visits around the autumn clock change in ZONE (2026-10-25, 25 hours) and the day
    before, some across hours and the day's edges."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 23, 20)
    out = []
    for burst in range(60):
        visitor = rng.choice([*(f"u:user{n}" for n in range(8)), None])
        moment = start + timedelta(minutes=rng.uniform(0, 60 * 56))
        for _ in range(rng.randint(1, 5)):
            moment += timedelta(minutes=rng.choice([0, 5, 20, 31, 45]))
            kind = rng.choice(["pageview", "pageview", "click", "success"])
            out.append(
                {
                    "event_name": kind,
                    "name": rng.choice(["paid", "trial"]) if kind == "success" else None,
                    "page_path": rng.choice(["/", "/pricing", "/docs"]),
                    "visitor_id": visitor or f"a:{burst}-{len(out)}",
                    "success_value_micros": rng.choice([None, 5_000_000])
                    if kind == "success"
                    else None,
                    "occurred_at": moment,
                    "received_at": moment,
                    "from_browser": kind != "success",
                    "channel": rng.choice(["Organic Search", "Direct", "", None]),
                    "source": rng.choice(["Google", "(none)", "", None]),
                    "device": rng.choice(["desktop", "mobile", ""]),
                }
            )
    return out


def test_hourly_buckets_of_the_long_day_from_built_segments(app, monkeypatch):
    monkeypatch.setattr(cursors, "GAP_GRACE", timedelta(0))  # ids without gaps here
    site_id = _store(app, 7)
    tz = zone(ZONE)
    with app.app_context():
        db.session.execute(
            insert(Event), [{"site_id": site_id, **row} for row in _autumn_events(7)]
        )
        db.session.commit()
        site = db.session.get(Site, site_id)
        spans = [
            DateRange(date(2026, 10, 25), date(2026, 10, 25), tz),  # 25 hourly buckets
            DateRange(date(2026, 10, 24), date(2026, 10, 25), tz),
            DateRange(date(2026, 3, 24), date(2026, 4, 2), tz),
        ]
        assert len(spans[0].buckets()) == 25
        before = [[sql_filtered.stats(site, s, [])] for s in spans]
        # The same figures once the spans are read from Parquet segments.
        invalidate.catch_up(db.session())
        directory = Path(app.config["ANALYTICS_STORE_DIR"])
        now = datetime(2026, 11, 2)
        assert build(db.session(), directory, [site_id], now=now).built > 0
        for span, (unfiltered,) in zip(spans, before, strict=True):
            previous = span.previous()
            assert usable_segments(directory, site_id, previous.start_utc, span.end_utc)
            assert sql_filtered.stats(site, span, []) == unfiltered
            for texts in FILTER_SETS:
                _check(site, span, texts)


@pytest.mark.parametrize("dimension", ["channel", "country", "page", "entry_page"])
def test_an_equality_on_the_stored_column_passes_what_the_filter_passes(dimension):
    # Every stored shape (NULL, "", the sentinels' texts, a value) against every value and
    # operator: the condition on the column keeps exactly the rows Filter.matches keeps.
    stored = [None, "", NONE, NOT_RECORDED, "Google", "google"]
    column = ("v_" if dimension == "channel" else "") + dimension
    con = duckdb.connect()
    con.register("t", pa.table({column: pa.array(stored, pa.string())}))
    for op in ("==", "!="):
        for value in [NONE, NOT_RECORDED, "Google", ""]:
            f = Filter(dimension, op, value)
            condition = compare_stored(f)
            if value == "" and dimension in ("channel", "country"):
                assert condition is None
                continue
            assert condition is not None
            sql = f"SELECT {column} FROM t WHERE {condition}"  # noqa: S608 - the test's own
            kept = con.execute(sql, [value]).fetchall()
            shown = (lambda v: v) if "page" in dimension else stored_value
            want = [v for v in stored if f.matches(shown(v))]
            assert sorted(kept, key=str) == sorted([(v,) for v in want], key=str), (f, kept)
    assert compare_stored(Filter("rule", "==", "paid")) is None
    assert compare_stored(Filter("prop:plan", "==", "pro")) is None
