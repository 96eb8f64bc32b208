"""Who converted or dropped off at a funnel step, against a from-scratch computation."""

from __future__ import annotations

import csv
import io
import random
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from datalook.analytics.funnels import people
from datalook.analytics.funnels.definition import definition_from_json
from datalook.analytics.funnels.models import Funnel
from datalook.analytics.ranges import parse_range
from datalook.extensions import db
from datalook.web import funnels as funnel_pages
from tests.conftest import add_site, sign_up
from tests.funnel_data import E, store
from tests.test_funnels_api import save_funnel
from tests.test_postgres import pg_app  # noqa: F401 - the fixture

DAY = datetime(2026, 3, 10)
RANGE = {"from": "2026-03-10", "to": "2026-03-10"}
WINDOW = timedelta(hours=24)
STEPS = [
    {"event_name": "pageview", "page_path": "/"},
    {"event_name": "pageview", "page_path": "/pricing"},
    {"event_name": "success", "name": "paid"},
]
# What each step matches, as the oracle reads a raw event: (event_name, path, name).
MATCHES = [
    lambda e: e.event_name == "pageview" and e.path == "/",
    lambda e: e.event_name == "pageview" and e.path == "/pricing",
    lambda e: e.event_name == "success" and e.name == "paid",
]
VISITORS = 90  # more than a page of the list


def random_events(seed: int) -> list[E]:
    """A few events per visitor around the day (some before it, some after)."""
    rng = random.Random(seed)
    events = []
    for n in range(VISITORS):
        for _ in range(rng.randint(1, 5)):
            kind = rng.choice(["/", "/", "/pricing", "/pricing", "paid", "/docs"])
            at = DAY + timedelta(minutes=rng.randint(-120, 26 * 60), seconds=rng.randint(0, 59))
            if kind == "paid":
                events.append(E(f"u:{n:03d}", at, "success", "/thanks", "paid", 10_000_000))
            else:
                events.append(E(f"u:{n:03d}", at, path=kind))
    events.append(E("a:anonymous", DAY + timedelta(hours=1)))  # never a visitor
    return events


def furthest_steps(events: list[E]) -> dict[str, int]:
    """From scratch: per visitor, the furthest step reached from any step-1 event on DAY,
    each next step the earliest matching event at or after the previous one, within the
    window from step 1 (ordered mode; the steps match different events)."""
    by_visitor: dict[str, list[E]] = {}
    for e in events:
        if not e.visitor.startswith("a:"):
            by_visitor.setdefault(e.visitor, []).append(e)
    found = {}
    for visitor, own in by_visitor.items():
        own.sort(key=lambda e: e.at)
        best = 0
        for start in own:
            if not (MATCHES[0](start) and DAY <= start.at < DAY + timedelta(days=1)):
                continue
            depth, at = 1, start.at
            for match in MATCHES[1:]:
                nxt = [
                    e
                    for e in own
                    if match(e) and at <= e.at <= start.at + WINDOW and e is not start
                ]
                if not nxt:
                    break
                depth, at = depth + 1, nxt[0].at
            best = max(best, depth)
        if best:
            found[visitor] = best
    return found


def expected(depths: dict[str, int], step: int, outcome: str) -> list[str]:
    """The visitors of a list, by id."""
    if outcome == "converted":
        return sorted(v for v, d in depths.items() if d >= step)
    return sorted(v for v, d in depths.items() if d == step - 1)


@pytest.fixture(params=["sqlite", "postgresql"])
def funnel(request):
    """(app, client, site, funnel id, the oracle's depths) on each database."""
    return prepare(request.getfixturevalue("app" if request.param == "sqlite" else "pg_app"))


def prepare(app):
    """A signed-up owner's site with the random events and the saved funnel."""
    client = app.test_client()
    sign_up(client)
    site_id = add_site(client)
    events = random_events(7)
    store(app, site_id, events)
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    return app, client, site_id, funnel_id, furthest_steps(events)


def listed(client, url: str) -> list[str]:
    """Every visitor of a list, page after page."""
    found, page = [], 1
    while True:
        html = client.get(f"{url}&page={page}").get_data(as_text=True)
        found += re.findall(r"<td><a href=\"[^\"]+\"><code>([^<]+)</code></a></td>", html)
        if ">Next</a>" not in html:
            return found
        page += 1


CASES = [(1, "converted"), (2, "converted"), (3, "converted"), (2, "dropped"), (3, "dropped")]


def test_the_lists_and_csv_hold_exactly_the_visitors_of_each_step(funnel):
    app, client, site_id, funnel_id, depths = funnel
    assert len(expected(depths, 1, "converted")) > people.PAGE_SIZE  # paginated
    assert expected(depths, 3, "converted") and expected(depths, 3, "dropped")
    base = f"/sites/{site_id}/funnels/{funnel_id}/visitors"
    for step, outcome in CASES:
        query = f"step={step}&outcome={outcome}&from=2026-03-10&to=2026-03-10"
        want = expected(depths, step, outcome)
        assert listed(client, f"{base}?{query}") == want, (step, outcome)
        response = client.get(f"{base}.csv?{query}")
        assert response.status_code == 200
        assert response.headers["Content-Disposition"].startswith("attachment;")
        rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
        assert rows[0] == ["visitor_id", "entered_at_utc", "furthest_step"]
        assert [r[0] for r in rows[1:]] == want
        assert all(int(r[2]) == depths[r[0]] for r in rows[1:])


def test_the_events_path_finds_the_same_visitors(funnel):
    """A strict funnel or one still being prepared is listed from the events: the same."""
    app, client, site_id, funnel_id, depths = funnel
    with app.app_context():
        saved = db.session.get(Funnel, funnel_id)
        definition = definition_from_json(saved.definition)
        rng = parse_range(RANGE, ZoneInfo("UTC"), DAY.date())
        for step, outcome in CASES:
            low, high = people.depth_bounds(step, outcome)
            found = people.from_events(db.session, site_id, definition, rng, low, high)
            assert [v.visitor_id for v in found] == expected(depths, step, outcome)


def test_the_report_and_the_list_show_drop_offs_revenue_and_conversion(funnel):
    app, client, site_id, funnel_id, depths = funnel
    html = client.get(f"/sites/{site_id}/funnels/{funnel_id}?from=2026-03-10&to=2026-03-10")
    page = html.get_data(as_text=True)
    reached = [len(expected(depths, k, "converted")) for k in (1, 2, 3)]
    drops = re.findall(r'<span class="drop-share[^"]*">([^<]+)</span>', page)
    assert drops == [
        f"−{round(100 * (reached[k - 1] - reached[k]) / reached[k - 1])}%" for k in (1, 2)
    ]
    assert "Who dropped off" in page
    table = page[page.index('id="funnel-table"') :]
    revenue_cells = re.findall(r"<td>(?:<span class=\"muted\">—</span>|\$[\d,.]+)</td>", table)
    assert revenue_cells[:2] == ['<td><span class="muted">—</span></td>'] * 2
    assert revenue_cells[2] == f"<td>${10 * reached[2]:,}.00</td>"  # $10 per payer

    # The list shows each funnel's conversion over the range its report was last viewed with.
    entered = len(expected(depths, 1, "converted"))
    converted = len(expected(depths, 3, "converted"))
    page = client.get(f"/sites/{site_id}/funnels/").get_data(as_text=True)
    assert f"{100 * converted / entered:.1f}%" in page
    assert f"{converted} of {entered}" in page


def test_a_visitors_journey_and_who_may_see_it(app):
    app, client, site_id, funnel_id, depths = prepare(app)
    visitor = expected(depths, 3, "converted")[0]
    query = f"visitor={visitor}&from=2026-03-09&to=2026-03-11"
    page = client.get(f"/sites/{site_id}/journeys/visitor?{query}").get_data(as_text=True)
    assert visitor in page and "<code>/</code>" in page

    other = app.test_client()
    sign_up(other, "other@example.com")
    for url in (
        f"/sites/{site_id}/journeys/visitor?{query}",
        f"/sites/{site_id}/funnels/{funnel_id}/visitors?step=1&outcome=converted",
        f"/sites/{site_id}/funnels/{funnel_id}/visitors.csv?step=1&outcome=converted",
    ):
        assert other.get(url).status_code == 404, url


BAD_LISTS = [
    ("no step", "outcome=converted"),
    ("step 0", "step=0&outcome=converted"),
    ("past the last step", "step=4&outcome=converted"),
    ("a drop-off at step 1", "step=1&outcome=dropped"),
    ("an unknown outcome", "step=2&outcome=lost"),
    ("a page 0", "step=2&outcome=converted&page=0"),
    ("a reversed range", "step=2&outcome=converted&from=2026-03-11&to=2026-03-10"),
]


def test_a_bad_list_request_is_a_400(client, app):
    sign_up(client)
    site_id = add_site(client)
    funnel_id = save_funnel(client, site_id, "Checkout", STEPS)
    base = f"/sites/{site_id}/funnels/{funnel_id}/visitors"
    for case, query in BAD_LISTS:
        assert client.get(f"{base}?{query}").status_code == 400, case
        if "page=" not in query:  # the CSV has no pages
            assert client.get(f"{base}.csv?{query}").status_code == 400, case


def test_the_list_reads_a_bounded_number_of_conversions(app, monkeypatch):
    app, client, site_id, funnel_id, depths = prepare(app)
    save_funnel(client, site_id, "Second", STEPS)
    monkeypatch.setattr(funnel_pages, "LISTED_CONVERSIONS", 1)
    page = client.get(f"/sites/{site_id}/funnels/").get_data(as_text=True)
    cells = re.findall(r"<td data-conversion>(.*?)</td>", page, re.S)
    assert len(cells) == 2
    assert "%" in cells[0] and "see the report" in cells[1]  # listed by name: Checkout first
