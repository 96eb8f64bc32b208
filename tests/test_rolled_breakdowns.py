"""Unfiltered breakdowns of long ranges from the per-day rollups (reports.rolled_rows)
against the count event by event (tests/python_reports.py), on SQLite and PostgreSQL.

The exact limit is 0 here, so every range with a rolled day is read from the rollups:
values, visits, page views, conversions and revenue must equal the oracle's exactly, and
visitors and converters lie within the sketches' error, after every change that drops a
day's segment (late events near built visits, an erasure, a retention cut-off, an
identity link). Ranges in UTC and in a zone whose days cut UTC days (edges read from the
rows), over built days, today's hour segments and spans no segment covers.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from pathlib import Path

from datalook import erasure
from datalook.analytics.ranges import DateRange, zone
from datalook.analytics.reports import dimension_rows as sql_rows
from datalook.analytics.reports.model import DimensionBreakdown
from datalook.analytics.store import daily, files, gc
from datalook.extensions import db
from datalook.models import Site
from tests import python_reports as python
from tests.test_analytics_store import (
    DAY0,
    build_all,
    engine_app,  # noqa: F401 - the fixture, used by name
    late_near_visits,
    link,
    new_site,
    random_events,
    store_events,
)
from tests.test_postgres import pg_app  # noqa: F401 - the fixture, used by name

ROLLED = list(daily.ROLLED)
FIRST = DAY0.date()


def _ranges() -> list[DateRange]:
    """Ranges over the built days and today's hours, in UTC and in two other zones."""
    found = []
    for name in ("UTC", "Europe/Berlin", "America/New_York"):
        found.append(DateRange(FIRST - timedelta(days=1), FIRST + timedelta(days=4), zone(name)))
        found.append(DateRange(FIRST + timedelta(days=1), FIRST + timedelta(days=2), zone(name)))
    return found


def _close(got: int, want: int) -> bool:
    """Whether an estimate lies within the sketches' error (lg_k 14: 0.8% standard error;
    3% is past 3.5 standard errors, and small counts are all but exact)."""
    return abs(got - want) <= max(1, math.ceil(0.03 * want))


def _assert_rolled(report: DimensionBreakdown, want: DimensionBreakdown, note: str) -> None:
    """The rolled report has the oracle's values and exact figures, visitors within the
    error, ordered by its own visitors."""
    assert not report.visitors_exact, note
    assert report.total_rows == want.total_rows, note
    expected = {row.value: row for row in want.rows}
    assert sorted(row.value for row in report.rows) == sorted(expected), note
    for row in report.rows:
        oracle = expected[row.value]
        exact = (row.visits, row.pageviews, row.conversions, row.revenue_micros)
        assert exact == (
            oracle.visits,
            oracle.pageviews,
            oracle.conversions,
            oracle.revenue_micros,
        ), f"{note} {row.value}"
        assert _close(row.visitors, oracle.visitors), f"{note} {row} {oracle}"
        assert _close(row.converters, oracle.converters), f"{note} {row} {oracle}"
    assert report.rows == sorted(report.rows, key=lambda row: (-row.visitors, row.value)), note


def _some_ranges() -> list[DateRange]:
    """Three of the ranges, one per zone (the long UTC and New York ones, Berlin's short
    one): the stages after the first build check these, to keep the test quick."""
    every = _ranges()
    return [every[0], every[3], every[4]]


def _compare(app, site_id: int, stage: str, ranges: list[DateRange] | None = None) -> int:
    """Every rolled dimension over the ranges (all of _ranges by default) against the
    oracle (all rows, one page of them and the panels' several dimensions at once): a
    report read row by row equals it, a rolled one as _assert_rolled says. How many reports
    were rolled."""
    rolled = 0
    with app.app_context():
        site = db.session.get(Site, site_id)
        for span in ranges or _ranges():
            note = f"{stage} {span.first} {span.last} {span.tz.key}"
            tables = sql_rows.dimension_tables(site, span, ROLLED, [], 1000)
            oracle = python.dimension_tables(site, span, ROLLED, [], 1000)
            for dimension in ROLLED:
                want = oracle[dimension]
                got = sql_rows.dimension_rows(site, span, dimension, [], 1000, 0)
                assert tables[dimension] == got, f"{note} {dimension}"
                if got.visitors_exact:
                    assert got == want, f"{note} {dimension}"
                    continue
                rolled += 1
                _assert_rolled(got, want, f"{note} {dimension}")
                page = sql_rows.dimension_rows(site, span, dimension, [], 2, 1)
                assert page.rows == got.rows[1:3] and page.total_rows == got.total_rows
        db.session.rollback()
    return rolled


def test_rolled_breakdowns_equal_the_count_event_by_event_after_every_change(engine_app):  # noqa: F811
    app = engine_app
    app.config["ANALYTICS_EXACT_EVENTS"] = 0
    seed = 11 if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite") else 12
    rng = random.Random(seed)
    site_id = new_site(app)
    store_events(app, site_id, random_events(seed))
    assert _compare(app, site_id, "unbuilt") == 0  # no rollup: read row by row, exact

    build_all(app)
    directory = Path(app.config["ANALYTICS_STORE_DIR"])
    assert list(directory.glob(f"{site_id}/*{files.ROLLUP_SUFFIX}"))
    assert _compare(app, site_id, "built") > 0

    # Late events near built visits' ends: read before the store's cursor saw them, and after.
    store_events(app, site_id, late_near_visits(app, site_id, rng))
    _compare(app, site_id, "late", _some_ranges())
    build_all(app)
    assert _compare(app, site_id, "late, built", _some_ranges()) > 0

    with app.app_context():
        assert erasure.erase_visitor(db.session.get(Site, site_id), "2", "test") > 0
    _compare(app, site_id, "erased", _some_ranges())
    build_all(app)
    assert _compare(app, site_id, "erased, built", _some_ranges()) > 0
    with app.app_context():
        erasure.delete_before(db.session.get(Site, site_id), DAY0 + timedelta(hours=30), "test")
    _compare(app, site_id, "retention", _some_ranges())
    build_all(app)
    assert _compare(app, site_id, "retention, built", _some_ranges()) > 0

    link(app, site_id, "c:b1", "1")
    _compare(app, site_id, "linked", _some_ranges())
    build_all(app)
    assert _compare(app, site_id, "linked, built", _some_ranges()) > 0


def test_below_the_exact_limit_and_without_rollups_the_rows_are_read(app):
    site_id = new_site(app)
    store_events(app, site_id, random_events(13))
    build_all(app)
    assert _compare(app, site_id, "under the limit") == 0  # default limit: 5,000 events

    # Rollups removed (a store built before they existed): read row by row, until the
    # next round of upkeep writes them again from the segments' files.
    app.config["ANALYTICS_EXACT_EVENTS"] = 0
    directory = Path(app.config["ANALYTICS_STORE_DIR"])
    made = sorted(directory.glob(f"{site_id}/*{files.ROLLUP_SUFFIX}"))
    assert made
    for path in made:
        path.unlink()
    assert _compare(app, site_id, "no rollups") == 0
    with app.app_context():
        assert daily.backfill(db.session(), directory) == len(made)
    assert sorted(directory.glob(f"{site_id}/*{files.ROLLUP_SUFFIX}")) == made
    assert _compare(app, site_id, "backfilled") > 0


def test_a_rollup_goes_with_its_segment(app):
    site_id = new_site(app)
    store_events(app, site_id, random_events(14))
    build_all(app)
    directory = Path(app.config["ANALYTICS_STORE_DIR"])
    before = sorted(directory.glob(f"{site_id}/*{files.ROLLUP_SUFFIX}"))
    assert before
    with app.app_context():
        erasure.delete_before(db.session.get(Site, site_id), DAY0 + timedelta(days=5), "test")
        gc.collect(db.session(), directory, grace=timedelta(0))
    assert list(directory.glob(f"{site_id}/*")) == []


def test_the_breakdown_json_says_whether_visitors_are_estimated(app):
    from tests.conftest import add_site, sign_up

    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    rows = [{**row, "is_test": False} for row in random_events(15)]
    store_events(app, site_id, rows)
    build_all(app)
    url = f"/sites/{site_id}/breakdown.json?dimension=source&from={FIRST}&to={date(2026, 3, 13)}"
    assert client.get(url).get_json()["visitors_exact"] is True
    page = f"/sites/{site_id}/?from={FIRST}&to={date(2026, 3, 13)}"
    assert "Estimated (within about 1%)" not in client.get(page).get_data(as_text=True)
    app.config["ANALYTICS_EXACT_EVENTS"] = 0
    body = client.get(url).get_json()
    assert body["visitors_exact"] is False and body["rows"]
    # The dashboard's panels mark their visitors as estimates.
    assert "Estimated (within about 1%)" in client.get(page).get_data(as_text=True)
