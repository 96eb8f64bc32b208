"""Funnels (unsaved and saved) and journeys with filters against a count from scratch.

A filter applies to the visit in which a funnel's step 1 (or a journey's session) starts:
the visit passes when one of its events in the range passes every filter. The events,
visits and filters of test_acquisition_reports (random acquisition values, visits across
the range's edges, anonymous and test events); the funnel matching and the sessions are
computed here in plain Python. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
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
FILTER_SETS = [
    ["source==Google"],
    ["channel!=Direct", "device=~OB"],
    ["page==/docs"],
    ["country==DE", "prop:plan==pro"],
    ["source==(not recorded)"],
    ["rule==paid"],
]


def _matches(step: dict, e: Raw) -> bool:
    """Whether an event satisfies a funnel step."""
    if e.kind != step["event_name"]:
        return False
    return "page_path" not in step or e.page == step["page_path"]


def _range():
    """The range's UTC bounds."""
    tz = ZoneInfo(ZONE)
    return utc_midnight(FIRST, tz), utc_midnight(LAST + timedelta(days=1), tz)


def _passing_visits(events: list[Raw], filters: list[str]) -> set[int]:
    """The numbers of the visits with an event in the range that passes every filter."""
    start, end = _range()
    visits = visits_of(events)
    return {
        number
        for e in events
        if not e.is_test and start <= e.at < end
        for visit, number in [visits[e.id]]
        if all(passes(f, e, visit) for f in filters)
    }


def expected_funnel(events: list[Raw], filters: list[str]) -> list[int]:
    """Visitors per step: each visitor's furthest chain from a step-1 event in the range
    whose visit passes, each next step the earliest other event at or after the previous
    step (the same instant too) and within the window."""
    start, end = _range()
    visits = visits_of(events)
    passing = _passing_visits(events, filters)
    own: dict[str, list[Raw]] = defaultdict(list)
    for e in events:
        if not e.is_test and not e.visitor.startswith("a:"):
            own[e.visitor].append(e)
    reached = [0] * len(STEPS)
    for items in own.values():
        items.sort(key=lambda e: (e.at, e.id))
        best = 0
        for i, first in enumerate(items):
            if not (_matches(STEPS[0], first) and start <= first.at < end):
                continue
            if visits[first.id][1] not in passing:
                continue
            used = [i]
            for step in STEPS[1:]:
                found = [
                    j
                    for j in range(len(items))
                    if j not in used
                    and _matches(step, items[j])
                    and items[used[-1]].at <= items[j].at <= first.at + WINDOW
                ]
                if not found:
                    break
                used.append(found[0])
            depth = len(used)
            best = max(best, depth)
        for k in range(best):
            reached[k] += 1
    return reached


def expected_journeys(events: list[Raw], filters: list[str], steps: int) -> dict:
    """journeys.json's answer: sessions of a visitor starting in the range whose visit
    passes, grouped by their first `steps` collapsed page paths."""
    start, end = _range()
    visits = visits_of(events)
    passing = _passing_visits(events, filters)
    groups: dict[tuple, dict] = {}
    seen: set[int] = set()
    total = 0
    for e in events:
        if e.is_test or e.visitor.startswith("a:"):
            continue
        visit, number = visits[e.id]
        first = visit.events[0]
        if number in seen or not start <= first.at < end or number not in passing:
            continue
        seen.add(number)
        paths: list[str] = []
        for x in visit.events:
            if not paths or paths[-1] != x.page:
                paths.append(x.page)
        total += 1
        group = groups.setdefault(
            tuple(paths[:steps]), {"sessions": 0, "visitors": set(), "converted": 0}
        )
        group["sessions"] += 1
        group["visitors"].add(e.visitor)
        group["converted"] += any(x.kind == "success" for x in visit.events)
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


def _args(filters: list[str], **more) -> str:
    """The query string: the range, the filters and more."""
    pairs = [("from", FIRST.isoformat()), ("to", LAST.isoformat())]
    pairs += [(k, v) for k, v in more.items()]
    pairs += [("filter", f) for f in filters]
    return urlencode(pairs)


def run_oracle(app, seed: int) -> None:
    """Every filter set on funnel.json, a saved funnel and journeys.json."""
    client, site_id = owner_site(app)
    events = make_events(seed, ZoneInfo(ZONE))
    with app.app_context():
        store(site_id, events)
        definition = parse_definition([json.dumps(s) for s in STEPS], "1h", "ordered")
        funnel_id = repository.save(db.session(), site_id, "f", definition).id
    steps = [("step", json.dumps(s)) for s in STEPS]
    problems = []
    for filters in FILTER_SETS:
        wanted = expected_funnel(events, filters)
        query = _args(filters, window="1h") + "&" + urlencode(steps)
        for url in (
            f"/sites/{site_id}/funnel.json?{query}",
            f"/sites/{site_id}/funnels/{funnel_id}.json?{_args(filters)}",
        ):
            answer = client.get(url)
            assert answer.status_code == 200, answer.get_data(as_text=True)
            got = [s["visitors"] for s in answer.get_json()["steps"]]
            if got != wanted:
                problems.append(f"{url}: {got} != {wanted}")
        for n in (1, 3):
            body = client.get(f"/sites/{site_id}/journeys.json?{_args(filters, steps=n)}")
            body = body.get_json()
            body.pop("freshness")
            if body != expected_journeys(events, filters, n):
                problems.append(f"journeys {filters} {n}: {body}")
    assert problems == [], "\n".join(problems[:3])
    # The filters do keep fewer attempts than none (the data is not one that passes all).
    everything = expected_funnel(events, [])
    assert all(expected_funnel(events, f)[0] < everything[0] for f in FILTER_SETS)


@pytest.mark.parametrize("seed", [1, 2])
def test_filtered_funnels_and_journeys_against_a_count_from_scratch(app, seed):
    run_oracle(app, seed)


def test_filtered_funnels_and_journeys_on_postgresql(pg_app):  # noqa: F811
    run_oracle(pg_app, 3)


@pytest.mark.parametrize(
    ("path", "text", "code"),
    [
        ("funnel.json", "nope==1", "unknown_dimension"),
        ("journeys.json", "source<>Google", None),
        ("journeys/next.json", "nope==1", "unknown_dimension"),
        ("funnels/{funnel}.json", "source", None),
    ],
)
def test_a_bad_filter_is_a_400_naming_the_parameter(app, path, text, code):
    client, site_id = owner_site(app)
    with app.app_context():
        definition = parse_definition([json.dumps(s) for s in STEPS], "1h", "ordered")
        funnel_id = repository.save(db.session(), site_id, "f", definition).id
    query = urlencode([("filter", text), ("path", "/"), *[("step", json.dumps(s)) for s in STEPS]])
    answer = client.get(f"/sites/{site_id}/{path.format(funnel=funnel_id)}?{query}")
    assert answer.status_code == 400
    (error,) = answer.get_json()["error"]["errors"]
    assert error["field"] == "filter"
    if code:
        assert error["code"] == code


def test_the_pages_take_filters_and_show_them_as_removable_chips(app):
    client, site_id = owner_site(app)
    events = make_events(5, ZoneInfo(ZONE))
    with app.app_context():
        store(site_id, events)
        definition = parse_definition([json.dumps(s) for s in STEPS], "1h", "ordered")
        funnel_id = repository.save(db.session(), site_id, "f", definition).id
    filters = ["source==Google", "page=~/"]
    for path, wanted in (
        (f"funnels/{funnel_id}", expected_funnel(events, filters)[0]),
        ("journeys/", expected_journeys(events, filters, 5)["sessions_total"]),
    ):
        page = client.get(f"/sites/{site_id}/{path}?{_args(filters)}")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "<code>source==Google</code>" in html and "<code>page=~/</code>" in html
        # Removing one chip keeps the other and the range.
        assert "from=2026-03-10&amp;to=2026-03-12&amp;filter=page%3D~/" in html
        assert str(wanted) in html
        # A bad filter: the page again without it, with a banner naming the parameter
        # (as every page answers a bad parameter).
        bad = client.get(f"/sites/{site_id}/{path}?filter=nope==1", follow_redirects=True)
        assert bad.status_code == 200 and "filter" in bad.get_data(as_text=True)
        assert "nope==1" not in bad.request.url
