"""A funnel broken down by the channel or source of the visit of each visitor's step 1,
against a count from scratch: each visitor's furthest chain from a step-1 event in the
range (the earliest start that reaches that far), counted under the value of the first
event of that start's visit. The events of test_acquisition_reports (random acquisition
values, visits across the range's edges, anonymous and test events). On SQLite and
PostgreSQL; funnel.json and a saved funnel; a bad value is refused naming `breakdown`.
"""

from __future__ import annotations

import html
import json
import re
from collections import defaultdict
from datetime import timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import pytest

from datalook.analytics.funnels import repository
from datalook.analytics.funnels.definition import parse_definition
from datalook.extensions import db
from tests.test_acquisition_reports import (
    FIRST,
    LAST,
    ZONE,
    Raw,
    make_events,
    owner_site,
    passes,
    shown,
    store,
    utc_midnight,
    visits_of,
)
from tests.test_postgres import pg_app  # noqa: F401 - the fixture, used by name

STEPS = [
    {"event_name": "pageview", "page_path": "/"},
    {"event_name": "pageview", "page_path": "/pricing"},
    {"event_name": "success"},
]
WINDOW = timedelta(hours=1)
CASES = [("channel", []), ("source", []), ("source", ["device=~OB"])]


def matches(step: dict, e: Raw) -> bool:
    """Whether an event satisfies a funnel step."""
    if e.kind != step["event_name"]:
        return False
    return "page_path" not in step or e.page == step["page_path"]


def expected(events: list[Raw], dimension: str, filters: list[str]) -> dict[str, list[int]]:
    """Per value, visitors per step, counted from scratch."""
    tz = ZoneInfo(ZONE)
    start, end = utc_midnight(FIRST, tz), utc_midnight(LAST + timedelta(days=1), tz)
    visits = visits_of(events)
    passing = {
        visits[e.id][1]
        for e in events
        if not e.is_test
        and start <= e.at < end
        and all(passes(f, e, visits[e.id][0]) for f in filters)
    }
    own: dict[str, list[Raw]] = defaultdict(list)
    for e in events:
        if not e.is_test and not e.visitor.startswith("a:"):
            own[e.visitor].append(e)
    found: dict[str, list[int]] = {}
    for items in own.values():
        items.sort(key=lambda e: (e.at, e.id))
        best, entry = 0, None
        for i, first in enumerate(items):
            if not (matches(STEPS[0], first) and start <= first.at < end):
                continue
            if visits[first.id][1] not in passing:
                continue
            used = [i]
            for step in STEPS[1:]:
                later = [
                    j
                    for j in range(len(items))
                    if j not in used
                    and matches(step, items[j])
                    and items[used[-1]].at <= items[j].at <= first.at + WINDOW
                ]
                if not later:
                    break
                used.append(later[0])
            if len(used) > best:  # the earliest start of the furthest chain
                best, entry = len(used), first
        if entry is None:
            continue
        visit = visits[entry.id][0]
        counts = found.setdefault(shown(visit.events[0].acquisition[dimension]), [0] * len(STEPS))
        for k in range(best):
            counts[k] += 1
    return found


def args(filters: list[str], **more: str) -> str:
    """The query string: the range, more, the filters."""
    pairs = [("from", FIRST.isoformat()), ("to", LAST.isoformat()), *more.items()]
    return urlencode(pairs + [("filter", f) for f in filters])


def run_oracle(app, seed: int) -> None:
    """Each case on funnel.json and on a saved funnel."""
    client, site_id = owner_site(app)
    events = make_events(seed, ZoneInfo(ZONE))
    with app.app_context():
        store(site_id, events)
        definition = parse_definition([json.dumps(s) for s in STEPS], "1h", "ordered")
        funnel_id = repository.save(db.session(), site_id, "f", definition).id
    steps = urlencode([("step", json.dumps(s)) for s in STEPS])
    problems = []
    for dimension, filters in CASES:
        wanted = expected(events, dimension, filters)
        assert len(wanted) > 1  # the data has several values to tell apart
        for url in (
            f"/sites/{site_id}/funnel.json?{args(filters, window='1h', breakdown=dimension)}"
            f"&{steps}",
            f"/sites/{site_id}/funnels/{funnel_id}.json?{args(filters, breakdown=dimension)}",
        ):
            answer = client.get(url)
            assert answer.status_code == 200, answer.get_data(as_text=True)
            body = answer.get_json()
            assert body["breakdown"]["dimension"] == dimension
            rows = body["breakdown"]["rows"]
            got = {row["value"]: [s["visitors"] for s in row["steps"]] for row in rows}
            if got != wanted:
                problems.append(f"{url}: {got} != {wanted}")
            # The rows add up to the funnel without a breakdown, most step-1 visitors first.
            plain = client.get(url.replace(f"breakdown={dimension}", "")).get_json()
            assert [s["visitors"] for s in body["steps"]] == [s["visitors"] for s in plain["steps"]]
            assert [sum(c[k] for c in got.values()) for k in range(len(STEPS))] == [
                s["visitors"] for s in plain["steps"]
            ]
            assert (
                body["excluded_events_without_visitor"] == plain["excluded_events_without_visitor"]
            )
            firsts = [(-row["steps"][0]["visitors"], row["value"]) for row in rows]
            assert firsts == sorted(firsts)
    assert problems == [], "\n".join(problems[:3])


@pytest.mark.parametrize("seed", [1, 2])
def test_a_funnel_by_channel_or_source_against_a_count_from_scratch(app, seed):
    run_oracle(app, seed)


def test_a_funnel_by_channel_or_source_on_postgresql(pg_app):  # noqa: F811
    run_oracle(pg_app, 3)


@pytest.mark.parametrize("value", ["country", "Source", "page", "prop:plan"])
def test_a_bad_breakdown_is_a_400_naming_it(app, value):
    client, site_id = owner_site(app)
    with app.app_context():
        definition = parse_definition([json.dumps(s) for s in STEPS], "1h", "ordered")
        funnel_id = repository.save(db.session(), site_id, "f", definition).id
    steps = urlencode([("step", json.dumps(s)) for s in STEPS])
    for url in (
        f"/sites/{site_id}/funnel.json?breakdown={value}&{steps}",
        f"/sites/{site_id}/funnels/{funnel_id}.json?breakdown={value}",
    ):
        answer = client.get(url)
        assert answer.status_code == 400
        (error,) = answer.get_json()["error"]["errors"]
        assert (error["field"], error["code"]) == ("breakdown", "invalid_breakdown")


def test_the_saved_funnel_page_shows_the_breakdown(app):
    client, site_id = owner_site(app)
    events = make_events(4, ZoneInfo(ZONE))
    with app.app_context():
        store(site_id, events)
        definition = parse_definition([json.dumps(s) for s in STEPS], "1h", "ordered")
        funnel_id = repository.save(db.session(), site_id, "f", definition).id
    plain = client.get(f"/sites/{site_id}/funnels/{funnel_id}?{args([])}")
    assert plain.status_code == 200
    text = plain.get_data(as_text=True)
    assert 'id="funnel-breakdown"' not in text and "breakdown=channel" in text
    for dimension, filters in CASES:
        page = client.get(
            f"/sites/{site_id}/funnels/{funnel_id}?{args(filters, breakdown=dimension)}"
        )
        assert page.status_code == 200
        found = html_rows(page.get_data(as_text=True))
        wanted = expected(events, dimension, filters)
        assert found == {value: [f"{n:,}" for n in counts] for value, counts in wanted.items()}
    # A bad one: the page without it, with a banner naming it.
    bad = client.get(
        f"/sites/{site_id}/funnels/{funnel_id}?breakdown=country", follow_redirects=True
    )
    assert bad.status_code == 200 and bad.request.args.get("breakdown") is None
    assert "breakdown: breakdown must be one of channel, source" in bad.get_data(as_text=True)


def html_rows(page: str) -> dict[str, list[str]]:
    """The breakdown table's rows: value → the visitors per step as shown."""
    table = page.split('id="funnel-breakdown"', 1)[1].split("</table>", 1)[0]
    rows = {}
    for row in re.findall(r'<tr data-value="([^"]*)">(.*?)</tr>', table, re.S):
        cells = re.findall(r"<td>([^<]*)</td>", row[1])
        rows[html.unescape(row[0])] = cells[:-1]  # the last one is the share from step 1
    return rows
