"""attribution.json: every success of a rule credited to its person's visits within the
lookback (first, last non-direct, linear with exact shares of the revenue), with anonymous
browser visits joined to their user by links. The oracle is written from the documented
rules over the raw rows the test stored; on SQLite and PostgreSQL. Bad parameters are
refused naming them."""

from __future__ import annotations

import html
import random
import re
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from urllib.parse import urlencode

import pytest
from sqlalchemy import insert

from datalook.analytics import identity
from datalook.extensions import db
from datalook.ingest import links
from datalook.models import LINK_FROM_BROWSER, LINK_FROM_SERVER, Event, Site, SuccessRule
from tests.conftest import add_site, sign_up
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

START = datetime(2026, 5, 1)
DAYS = 20
SOURCES = [("Newsletter", "Email", "may"), ("Google", "Organic Search", ""), ("", "Direct", "")]
SOURCES += [("Facebook", "Paid Social", "spring"), ("Direct / None", "Direct", "")]
RULES = ["paid", "trial"]
VALUES = [49_000_000, 10_010_000, 30_000, 1_000_000, None]


def random_rows(seed: int, site_id: int) -> tuple[list[dict], list[tuple[str, str, str]]]:
    """Random page views of people's browsers (anonymous `c:` ids, some of them linked to
    their user) and successes from the backend (`u:`) or browsers, some without a visitor;
    and the links."""
    rng = random.Random(seed)
    rows: list[dict] = []
    made: list[tuple[str, str, str]] = []
    for person in range(8):
        browsers = [f"c:{person:02d}{n:030d}" for n in range(rng.randint(1, 3))]
        for browser in browsers:
            if rng.random() < 0.7:
                made.append(
                    (browser, f"user{person}", rng.choice([LINK_FROM_BROWSER, LINK_FROM_SERVER]))
                )
        at = START + timedelta(hours=rng.randrange(24 * 3))
        for _ in range(rng.randint(2, 9)):
            at += timedelta(minutes=rng.choice([1, 10, 29, 31, 90, 600, 2000, 6000]))
            if rng.random() < 0.75:
                source, channel, campaign = rng.choice(SOURCES)
                browser = rng.choice(browsers)
                rows.append(
                    _row(site_id, at, "pageview", browser, browser, source, channel, campaign)
                )
            else:
                who = rng.choice([f"u:user{person}", f"a:{len(rows)}"])
                row = _row(site_id, at, "success", who, None, "", "Direct", "")
                row.update(name=rng.choice(RULES), success_value_micros=rng.choice(VALUES))
                rows.append(row)
    return rows, made


def _row(site_id, at, kind, visitor, browser, source, channel, campaign) -> dict:
    """One event row as ingestion stores it."""
    return {
        "site_id": site_id,
        "event_name": kind,
        "name": None,
        "page_path": "/",
        "visitor_id": visitor,
        "success_user_id": visitor[2:] if visitor.startswith("u:") else None,
        "success_value_micros": None,
        "occurred_at": at,
        "received_at": at,
        "from_browser": browser is not None,
        "anonymous_id": browser,
        "source": source,
        "channel": channel,
        "campaign": campaign,
        "medium": "",
    }


def oracle(rows, made, rule, model, dimension, lookback, first, last) -> dict:
    """The report from the rows and links, by the documented rules."""
    linked: dict[str, str] = {}
    origin: dict[str, str] = {}
    for anonymous, user, by in made:  # first wins, a server's overrides a browser's
        if anonymous not in linked or (origin[anonymous] == "browser" and by == "server"):
            linked[anonymous], origin[anonymous] = user, by
    views: dict[str, list[dict]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["occurred_at"]):
        if row["event_name"] == "pageview":
            who = row["visitor_id"]
            views[f"u:{linked[who]}" if who in linked else who].append(row)
    starts: dict[str, list[dict]] = {}
    for who, seen in views.items():
        starts[who] = [
            v
            for n, v in enumerate(seen)
            if n == 0 or v["occurred_at"] - seen[n - 1]["occurred_at"] > timedelta(minutes=30)
        ]
    table: dict[str, list] = defaultdict(lambda: [Fraction(0), set(), 0])
    lost = [0, 0]
    for row in rows:
        at = row["occurred_at"]
        if row["event_name"] != "success" or not first <= at < last:
            continue
        if rule is not None and row["name"] != rule:
            continue
        value = row["success_value_micros"] or 0
        who = row["visitor_id"]
        visits = [v for v in starts.get(who, []) if at - lookback <= v["occurred_at"] <= at]
        if who.startswith("a:") or not visits:
            lost[0] += 1
            lost[1] += value
            continue
        if model == "first":
            shares = [(visits[0], Fraction(1), value)]
        elif model == "last":
            others = [v for v in visits if v["source"] not in ("", "Direct / None")]
            shares = [((others or visits)[-1], Fraction(1), value)]
        else:
            n = len(visits)
            unit = 10_000 if value % 10_000 == 0 else 1
            cents = [value // unit // n + (1 if k < value // unit % n else 0) for k in range(n)]
            shares = [(v, Fraction(1, n), c * unit) for v, c in zip(visits, cents, strict=True)]
        for visit, share, amount in shares:
            entry = table[visit[dimension] or "(none)"]
            entry[0] += share
            entry[1].add(who)
            entry[2] += amount
    money = lambda micros: f"{Decimal(micros) / 10**6:.2f}"  # noqa: E731
    return {
        "rows": {
            value: (
                int(c) if c.denominator == 1 else round(float(c), 4),
                len(people),
                money(amount),
            )
            for value, (c, people, amount) in table.items()
        },
        "unattributed": {"conversions": lost[0], "revenue": money(lost[1])},
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_app(request):
    """An app with a logged-in owner and a site in UTC, on each database."""
    app = request.getfixturevalue("app" if request.param == "sqlite" else "pg_app")
    client = app.test_client()
    sign_up(client)
    # Through the form, so that the owner is the site's member (the access rules ask that).
    site_id = add_site(client, "shop.example")
    with app.app_context():
        db.session.get(Site, site_id).currency = "EUR"
        db.session.commit()
    return app, client, site_id


def test_attribution_credits_the_joined_visits_as_the_rules_say(engine_app, monkeypatch):
    app, client, site_id = engine_app
    monkeypatch.setattr(identity, "LINK_GRACE", timedelta(0))  # the report applies them now
    rows, made = random_rows(7, site_id)
    with app.app_context():
        db.session.execute(insert(Event), rows)
        db.session.commit()
        raw = db.engine.raw_connection()
        try:
            cursor = raw.cursor()
            for link in made:
                links.record(cursor, db.engine.dialect, site_id, [link], START)
            raw.commit()
        finally:
            raw.close()
    assert any(r["event_name"] == "success" for r in rows)
    first, last = datetime(2026, 5, 3), datetime(2026, 5, 9)
    for model in ("first", "last", "linear"):
        for dimension, lookback, rule in [
            ("source", "30d", "paid"),
            ("channel", "2d", None),
            ("campaign", "36h", "trial"),
        ]:
            query = {"from": "2026-05-03", "to": "2026-05-08", "model": model}
            query.update(dimension=dimension, lookback=lookback)
            if rule:
                query["rule"] = rule
            answer = client.get(f"/sites/{site_id}/attribution.json?{urlencode(query)}")
            assert answer.status_code == 200, answer.get_data(as_text=True)
            body = answer.get_json()
            hours = int(lookback[:-1]) * (24 if lookback.endswith("d") else 1)
            want = oracle(rows, made, rule, model, dimension, timedelta(hours=hours), first, last)
            got = {
                row["value"]: (row["conversions"], row["converters"], row["revenue"])
                for row in body["rows"]
            }
            assert got == want["rows"], (model, dimension, lookback)
            assert body["unattributed"] == want["unattributed"], (model, dimension)
            assert (body["rule"], body["model"], body["dimension"]) == (rule, model, dimension)
            if rule is not None:  # a filter reads every event's visit: the same successes
                query.pop("rule")
                query["filter"] = f"rule=={rule}"
                again = client.get(f"/sites/{site_id}/attribution.json?{urlencode(query)}")
                assert again.get_json()["rows"] == body["rows"], (model, "filter")
                assert again.get_json()["filters"] == [f"rule=={rule}"]
            assert "freshness" in body


def test_a_linear_split_keeps_exact_cents_that_sum_to_the_total():
    from datalook.analytics.reports.attribution import split

    assert split(49_000_000, 3, 10_000) == [16_340_000, 16_330_000, 16_330_000]
    assert split(10_000, 3, 10_000) == [10_000, 0, 0]
    assert split(1_000_001, 2, 10_000) == [500_001, 500_000]  # finer than a cent
    assert split(-30_000, 2, 10_000) == [-20_000, -10_000]
    assert sum(split(123_450_000, 7, 10_000)) == 123_450_000


BAD = [
    ({"model": "middle"}, "model", "invalid_model"),
    ({"dimension": "page"}, "dimension", "invalid_dimension"),
    ({"lookback": "30"}, "lookback", "invalid_lookback"),
    ({"lookback": "0d"}, "lookback", "invalid_lookback"),
    ({"lookback": "91d"}, "lookback", "out_of_range"),
    ({"rule": "x" * 101}, "rule", "invalid_rule"),
    ({"from": "2026-05-09", "to": "2026-05-01"}, "to", "before_from"),
    ({"filter": "planet==mars"}, "filter", "unknown_dimension"),
]


@pytest.mark.parametrize(("query", "field", "code"), BAD)
def test_bad_parameters_are_refused_naming_them(client, query, field, code):
    sign_up(client)
    site_id = add_site(client, "bad.example")
    answer = client.get(f"/sites/{site_id}/attribution.json?{urlencode(query)}")
    assert answer.status_code == 400
    (error,) = answer.get_json()["error"]["errors"]
    assert (error["field"], error["code"]) == (field, code)


def test_the_dashboard_shows_revenue_by_source_for_its_range(engine_app):
    app, client, site_id = engine_app
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("a page of the dashboard, the same on either database")
    with app.app_context():
        db.session.execute(
            insert(Event),
            [
                {
                    **_row(site_id, datetime(2026, 5, 2), "success", "u:1", None, "", "Direct", ""),
                    "name": "paid",
                    "success_value_micros": 1_000_000,
                }
            ],
        )
        db.session.commit()
    page = client.get(f"/sites/{site_id}/?from=2026-05-01&to=2026-05-03").get_data(as_text=True)
    assert "Revenue by source" in page
    url = (
        f"/sites/{site_id}/attribution.json?dimension=source&amp;from=2026-05-01&amp;to=2026-05-03"
    )
    assert f'data-attribution-url="{url}"' in page
    script = client.get("/static/attribution.js")
    assert script.status_code == 200
    script.close()


def test_a_rule_page_shows_the_revenue_by_source_of_that_rule(engine_app):
    app, client, site_id = engine_app
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        pytest.skip("a page of the dashboard, the same on either database")
    day = datetime(2026, 5, 2)
    with app.app_context():
        for name in ("paid", "trial"):
            db.session.add(SuccessRule(site_id=site_id, name=name, first_seen_at=day))
        view = _row(
            site_id, day, "pageview", "c:" + "1" * 32, "c:" + "1" * 32, "Newsletter", "Email", ""
        )
        paid = _row(
            site_id,
            day + timedelta(minutes=5),
            "success",
            "c:" + "1" * 32,
            "c:" + "1" * 32,
            "",
            "Direct",
            "",
        )
        paid.update(name="paid", success_value_micros=49_000_000)
        trial = {**paid, "name": "trial", "success_value_micros": 5_000_000}
        db.session.execute(insert(Event), [view, paid, trial])
        db.session.commit()
    answer = client.get(f"/sites/{site_id}/rules/edit?name=paid&from=2026-05-01&to=2026-05-03")
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    assert "Revenue by source" in page and 'data-model="first"' in page
    match = re.search(r'data-attribution-url="([^"]+)"', page)
    assert match is not None
    url = html.unescape(match.group(1))
    assert "rule=paid" in url and "from=2026-05-01" in url
    # What the panel's script fetches for each model: only this rule's revenue.
    for model in ("first", "last", "linear"):
        body = client.get(f"{url}&model={model}").get_json()
        assert body["rule"] == "paid"
        assert [(r["value"], r["conversions"], r["revenue"]) for r in body["rows"]] == [
            ("Newsletter", 1, "49.00")
        ]
    assert client.get(f"/sites/{site_id}/rules/edit?name=nope").status_code == 404
