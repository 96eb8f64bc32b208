"""funnel.json and saved funnels over real stored events, in a site's own time zone."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest

from tests.conftest import add_site, csrf_from, sign_up
from tests.funnel_data import E, set_timezone, store

# 2026-03-10 in New York (EDT, UTC-4) is [04:00 UTC on the 10th, 04:00 UTC on the 11th).
NY_START = datetime(2026, 3, 10, 4, 0)
RANGE = {"from": "2026-03-10", "to": "2026-03-10"}
HOME = {"event_name": "pageview", "page_path": "/"}
PRICING = {"event_name": "pageview", "page_path": "/pricing"}
PAID = {"event_name": "success", "name": "paid"}
STEPS = [HOME, PRICING, PAID]


def at(minutes: float) -> datetime:
    """`minutes` after the range's first instant (UTC)."""
    return NY_START + timedelta(minutes=minutes)


def funnel_url(site_id: int, steps=STEPS, window="24h", mode="ordered", **extra) -> str:
    """The funnel.json URL for these steps."""
    args = [("step", json.dumps(s)) for s in steps] + [("window", window), ("mode", mode)]
    args += list({**RANGE, **extra}.items())
    return f"/sites/{site_id}/funnel.json?{urlencode(args)}"


# Each scenario: the events, then the expected visitors per step (computed by hand).
SCENARIOS = [
    (
        "all three steps",
        [
            E("u:1", at(0)),
            E("u:1", at(5), path="/pricing"),
            E("u:1", at(9), "success", "/ok", "paid", 9_990_000),
        ],
        [1, 1, 1],
    ),
    (
        "step 1 one second before the range (NY midnight)",
        [E("u:1", at(-1 / 60)), E("u:1", at(1), path="/pricing")],
        [0, 0, 0],
    ),
    (
        "step 1 at the range's first instant",
        [E("u:1", at(0)), E("u:1", at(1), path="/pricing")],
        [1, 1, 0],
    ),
    (
        "step 1 in the last second, step 2 the next day",
        [E("u:1", at(24 * 60 - 1 / 60)), E("u:1", at(24 * 60 + 60), path="/pricing")],
        [1, 1, 0],
    ),
    ("step 1 at the next local midnight is outside", [E("u:1", at(24 * 60))], [0, 0, 0]),
    ("out of order", [E("u:1", at(0), path="/pricing"), E("u:1", at(1))], [1, 0, 0]),
    ("window edge is inside", [E("u:1", at(0)), E("u:1", at(24 * 60), path="/pricing")], [1, 1, 0]),
    ("past the window", [E("u:1", at(0)), E("u:1", at(24 * 60 + 1), path="/pricing")], [1, 0, 0]),
    (
        "events without a visitor are left out",
        [E("a:x", at(0)), E("a:y", at(1), path="/pricing")],
        [0, 0, 0],
    ),
    (
        "two visitors",
        [E("u:1", at(0)), E("u:2", at(3)), E("u:2", at(4), path="/pricing")],
        [2, 1, 0],
    ),
    (
        "visitor re-enters and counts once",
        [E("u:1", at(0)), E("u:1", at(60)), E("u:1", at(61), path="/pricing")],
        [1, 1, 0],
    ),
]


@pytest.fixture
def ny_site(client, app):
    """A logged-in owner's site reporting in New York time."""
    sign_up(client)
    site_id = add_site(client)
    set_timezone(app, site_id, "America/New_York")
    return site_id


@pytest.mark.parametrize(
    ("events", "expected"), [s[1:] for s in SCENARIOS], ids=[s[0] for s in SCENARIOS]
)
def test_unsaved_and_saved_funnels_agree_with_the_expected_counts(
    client, app, ny_site, events, expected
):
    store(app, ny_site, events)
    unsaved = client.get(funnel_url(ny_site))
    assert unsaved.status_code == 200, unsaved.get_data(as_text=True)
    assert [s["visitors"] for s in unsaved.get_json()["steps"]] == expected

    funnel_id = save_funnel(client, ny_site, "Checkout", STEPS)
    saved = client.get(f"/sites/{ny_site}/funnels/{funnel_id}.json?{urlencode(RANGE)}")
    assert saved.status_code == 200
    assert saved.get_json() == unsaved.get_json()


def test_report_fields_excluded_events_and_revenue(client, app, ny_site):
    store(
        app,
        ny_site,
        [
            E("u:1", at(0)),
            E("u:1", at(2), path="/pricing"),
            E("u:1", at(3), "success", "/ok", "paid", 10_000_001),
            E("u:2", at(0)),
            E("u:2", at(6), path="/pricing"),
            E("a:1", at(1)),
            E("a:2", at(1), "success", "/ok", "paid", 5_000_000),
            E("a:3", at(-5)),  # before the range: not counted as excluded either
        ],
    )
    body = client.get(funnel_url(ny_site)).get_json()
    assert body["excluded_events_without_visitor"] == 2
    home, pricing, paid = body["steps"]
    assert (home["visitors"], pricing["visitors"], paid["visitors"]) == (2, 2, 1)
    assert pricing["median_seconds_from_previous"] == 240.0  # of 120 s and 360 s
    assert paid["conversion_from_start"] == 0.5 and paid["conversion_from_previous"] == 0.5
    assert paid["revenue"] == "10.000001" and home["revenue"] == "0.00"
    assert paid["label"] == "success paid"


def test_strict_mode_over_the_database(client, app, ny_site):
    store(
        app,
        ny_site,
        [
            E("u:1", at(0)),
            E("u:1", at(1), "click", "/"),  # between the steps
            E("u:1", at(2), path="/pricing"),
            E("u:2", at(0)),
            E("u:2", at(1), path="/pricing"),
        ],
    )
    ordered = client.get(funnel_url(ny_site, STEPS[:2])).get_json()
    strict = client.get(funnel_url(ny_site, STEPS[:2], mode="strict")).get_json()
    assert [s["visitors"] for s in ordered["steps"]] == [2, 2]
    assert [s["visitors"] for s in strict["steps"]] == [2, 1]


def test_prefix_and_property_steps(client, app, ny_site):
    store(
        app,
        ny_site,
        [
            E("u:1", at(0), path="/docs/start"),
            E("u:1", at(1), "click", "/docs/start", properties={"plan": "pro"}),
            E("u:2", at(0), path="/docs/api"),
            E("u:2", at(1), "click", "/docs/api", properties={"plan": "team"}),
            E("u:3", at(0), path="/docsx"),
        ],
    )
    steps = [
        {"event_name": "pageview", "page_path": "/docs/*"},
        {"event_name": "click", "property": {"key": "plan", "value": "pro"}},
    ]
    body = client.get(funnel_url(ny_site, steps)).get_json()
    assert [s["visitors"] for s in body["steps"]] == [2, 1]


def test_saved_funnel_catches_up_with_new_events(client, app, ny_site):
    store(app, ny_site, [E("u:1", at(0))])
    funnel_id = save_funnel(client, ny_site, "Checkout", STEPS)
    url = f"/sites/{ny_site}/funnels/{funnel_id}.json?{urlencode(RANGE)}"
    assert [s["visitors"] for s in client.get(url).get_json()["steps"]] == [1, 0, 0]
    store(app, ny_site, [E("u:1", at(5), path="/pricing"), E("u:2", at(7))])
    assert [s["visitors"] for s in client.get(url).get_json()["steps"]] == [2, 1, 0]


BAD_PARAMS = [
    ("one step", {"step": [json.dumps(HOME)]}, "step"),
    ("nine steps", {"step": [json.dumps(HOME)] * 9}, "step"),
    ("unknown event_name", {"step": [json.dumps(HOME), '{"event_name":"buy"}']}, "step"),
    ("malformed step", {"step": [json.dumps(HOME), "{"]}, "step"),
    ("window out of bounds", {"window": "31d"}, "window"),
    ("window malformed", {"window": "soon"}, "window"),
    ("mode", {"mode": "any"}, "mode"),
    ("bad date", {"from": "2026-13-01"}, "from"),
    ("to before from", {"to": "2026-03-01"}, "to"),
    ("unknown period", {"period": "decade", "from": "", "to": ""}, "period"),
]


@pytest.mark.parametrize(
    ("change", "field"), [b[1:] for b in BAD_PARAMS], ids=[b[0] for b in BAD_PARAMS]
)
def test_bad_parameters_answer_400_naming_the_parameter(client, ny_site, change, field):
    args = {"step": [json.dumps(s) for s in STEPS], "window": "24h", "mode": "ordered", **RANGE}
    args.update(change)
    response = client.get(f"/sites/{ny_site}/funnel.json?{urlencode(args, doseq=True)}")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["errors"][0]["field"] == field


def save_funnel(client, site_id: int, name: str, steps: list[dict], window="24h") -> int:
    """Save a funnel through the builder form like a browser; return its id."""
    page = client.get(f"/sites/{site_id}/funnels/new")
    form = {
        "csrf_token": csrf_from(page.get_data(as_text=True)),
        "name": name,
        "window": window,
        "mode": "ordered",
        "event_name": [s["event_name"] for s in steps],
        "page_path": [s.get("page_path") or "" for s in steps],
        "rule_name": [s.get("name") or "" for s in steps],
        "property_key": [(s.get("property") or {}).get("key", "") for s in steps],
        "property_value": [str((s.get("property") or {}).get("value", "")) for s in steps],
    }
    response = client.post(f"/sites/{site_id}/funnels/", data=form)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return int(response.headers["Location"].rstrip("/").split("/")[-1])


def test_builder_saves_lists_edits_and_deletes(client, app, ny_site):
    funnel_id = save_funnel(client, ny_site, "Checkout", STEPS)
    listing = client.get(f"/sites/{ny_site}/funnels/").get_data(as_text=True)
    assert "Checkout" in listing
    report = client.get(f"/sites/{ny_site}/funnels/{funnel_id}?{urlencode(RANGE)}")
    assert report.status_code == 200
    html = report.get_data(as_text=True)
    assert "<svg" in html and "Drop-off" in html and "How funnels are counted" in html

    edit_page = client.get(f"/sites/{ny_site}/funnels/{funnel_id}/edit").get_data(as_text=True)
    assert 'value="/pricing"' in edit_page
    response = client.post(
        f"/sites/{ny_site}/funnels/{funnel_id}/edit",
        data={
            "csrf_token": csrf_from(edit_page),
            "name": "Home to paid",
            "window": "7d",
            "mode": "strict",
            "event_name": ["pageview", "success"],
            "page_path": ["/", ""],
            "rule_name": ["", "paid"],
            "property_key": ["", ""],
            "property_value": ["", ""],
        },
    )
    assert response.status_code == 302
    listing = client.get(f"/sites/{ny_site}/funnels/").get_data(as_text=True)
    assert "Home to paid" in listing and "strict" in listing

    token = csrf_from(listing)
    assert client.get(f"/sites/{ny_site}/funnels/{funnel_id}/delete").status_code == 405
    assert client.post(f"/sites/{ny_site}/funnels/{funnel_id}/delete").status_code == 400
    deleted = client.post(
        f"/sites/{ny_site}/funnels/{funnel_id}/delete", data={"csrf_token": token}
    )
    assert deleted.status_code == 302
    assert client.get(f"/sites/{ny_site}/funnels/{funnel_id}.json").status_code == 404


def test_builder_refuses_a_bad_funnel_naming_the_problem(client, ny_site):
    page = client.get(f"/sites/{ny_site}/funnels/new").get_data(as_text=True)
    form = {"csrf_token": csrf_from(page), "name": "One step", "window": "24h", "mode": "ordered"}
    form.update({"event_name": ["pageview"], "page_path": ["/"], "rule_name": [""]})
    response = client.post(f"/sites/{ny_site}/funnels/", data=form)
    assert response.status_code == 400
    assert 'data-field="step"' in response.get_data(as_text=True)
    form.update({"event_name": ["pageview", "click"], "page_path": ["/", "/x"], "window": "99d"})
    response = client.post(f"/sites/{ny_site}/funnels/", data=form)
    assert response.status_code == 400
    assert 'data-field="window"' in response.get_data(as_text=True)
    no_csrf = {k: v for k, v in form.items() if k != "csrf_token"}
    assert client.post(f"/sites/{ny_site}/funnels/", data=no_csrf).status_code == 400


def test_other_owners_get_404(client, app, ny_site):
    funnel_id = save_funnel(client, ny_site, "Mine", STEPS)
    other = app.test_client()
    sign_up(other, "other@example.com")
    for url in (
        funnel_url(ny_site),
        f"/sites/{ny_site}/funnels/{funnel_id}.json",
        f"/sites/{ny_site}/funnels/{funnel_id}",
        f"/sites/{ny_site}/funnels/",
        f"/sites/{ny_site}/funnels/new",
        f"/sites/{ny_site}/journeys.json",
        f"/sites/{ny_site}/journeys/",
        f"/sites/{ny_site}/quests/funnel",
    ):
        assert other.get(url).status_code == 404, url
    own_site = add_site(other, "other.example.com")
    assert other.get(f"/sites/{own_site}/funnels/{funnel_id}.json").status_code == 404


@pytest.mark.parametrize("derive_batch", [None, 7], ids=["one batch", "batches of 7 events"])
def test_saved_funnel_stays_equal_to_the_unsaved_one_as_events_arrive_late(
    client, app, ny_site, monkeypatch, derive_batch
):
    import random

    from datalook.analytics.funnels import derivation as funnel_store

    if derive_batch:  # many short derivation transactions must give the same rows
        monkeypatch.setattr(funnel_store, "DERIVE_BATCH", derive_batch)
        # They take a report longer than its default budget on a busy machine: this is
        # about what they derive, so the report may take its time.
        monkeypatch.setitem(app.config, "REPORT_CATCHUP_BUDGET_MS", 60_000)

    rng = random.Random(3)
    funnel_id = save_funnel(client, ny_site, "Checkout", STEPS, window="90m")
    saved_url = f"/sites/{ny_site}/funnels/{funnel_id}.json?{urlencode(RANGE)}"
    kinds = [
        ("pageview", "/", None, None),
        ("pageview", "/pricing", None, None),
        ("success", "/ok", "paid", 1_000_000),
        ("click", "/", None, None),
    ]
    for _batch in range(6):
        events = []
        for _ in range(30):
            kind, path, name, value = rng.choice(kinds)
            visitor = rng.choice(["u:1", "u:2", "u:3", "u:4", "a:anon"])
            # Anywhere from a few hours before the range to after its end: some arrive late.
            events.append(E(visitor, at(rng.randint(-300, 26 * 60)), kind, path, name, value))
        store(app, ny_site, events)
        saved = client.get(saved_url).get_json()
        unsaved = client.get(funnel_url(ny_site, window="90m")).get_json()
        assert saved == unsaved
    # Other ranges: a visitor's best attempt depends on where the range cuts.
    for first, last in [
        ("2026-03-09", "2026-03-09"),
        ("2026-03-09", "2026-03-11"),
        ("2026-03-11", "2026-03-11"),
    ]:
        days = {"from": first, "to": last}
        saved = client.get(f"/sites/{ny_site}/funnels/{funnel_id}.json?{urlencode(days)}")
        unsaved = client.get(funnel_url(ny_site, window="90m", **days))
        assert saved.get_json() == unsaved.get_json(), days


def test_editing_a_saved_funnels_steps_derives_it_again(client, app, ny_site):
    store(
        app,
        ny_site,
        [E("u:1", at(0)), E("u:1", at(1), path="/pricing"), E("u:2", at(2), path="/pricing")],
    )
    funnel_id = save_funnel(client, ny_site, "Checkout", STEPS)
    url = f"/sites/{ny_site}/funnels/{funnel_id}.json?{urlencode(RANGE)}"
    assert [s["visitors"] for s in client.get(url).get_json()["steps"]] == [1, 1, 0]
    page = client.get(f"/sites/{ny_site}/funnels/{funnel_id}/edit").get_data(as_text=True)
    response = client.post(
        f"/sites/{ny_site}/funnels/{funnel_id}/edit",
        data={
            "csrf_token": csrf_from(page),
            "name": "Pricing first",
            "window": "24h",
            "mode": "ordered",
            "event_name": ["pageview", "pageview"],
            "page_path": ["/pricing", "/"],
            "rule_name": ["", ""],
            "property_key": ["", ""],
            "property_value": ["", ""],
        },
    )
    assert response.status_code == 302
    body = client.get(url).get_json()
    assert [s["label"] for s in body["steps"]] == ["pageview /pricing", "pageview /"]
    assert [s["visitors"] for s in body["steps"]] == [2, 0]


def test_saved_funnel_equals_the_unsaved_one_over_days_and_a_time_zone_change(client, app, ny_site):
    """A saved funnel keeps one attempt per visitor and local day: over ranges of one or
    several days, with attempts of every depth, and after the site's zone changes, its
    report stays the unsaved one (odd and even counts of gaps for the medians)."""
    import random

    rng = random.Random(11)
    funnel_id = save_funnel(client, ny_site, "Checkout", STEPS, window="6h")
    kinds = [
        ("pageview", "/", None, None),
        ("pageview", "/", None, None),
        ("pageview", "/pricing", None, None),
        ("success", "/ok", "paid", 2_500_000),
    ]
    visitors = [f"u:{i}" for i in range(9)] + ["a:anon"]
    ranges = [
        ("2026-03-09", "2026-03-09"),
        ("2026-03-10", "2026-03-10"),
        ("2026-03-11", "2026-03-11"),
        ("2026-03-09", "2026-03-10"),
        ("2026-03-10", "2026-03-12"),
        ("2026-03-08", "2026-03-12"),
    ]

    def check(tz: str) -> None:
        """Every range gives the saved funnel the unsaved one's report."""
        for first, last in ranges:
            days = {"from": first, "to": last}
            saved = client.get(f"/sites/{ny_site}/funnels/{funnel_id}.json?{urlencode(days)}")
            unsaved = client.get(funnel_url(ny_site, window="6h", **days))
            assert saved.status_code == 200
            assert saved.get_json() == unsaved.get_json(), (tz, days)

    for tz in ("America/New_York", "Asia/Kathmandu", "UTC"):
        # The zone changes first: the days kept so far no longer line up with the ranges.
        set_timezone(app, ny_site, tz)
        check(tz)
        events = []
        for _ in range(120):
            kind, path, name, value = rng.choice(kinds)
            moment = at(rng.randint(-30 * 60, 60 * 60) + rng.randint(0, 59) / 60)
            events.append(E(rng.choice(visitors), moment, kind, path, name, value))
        store(app, ny_site, events)
        check(tz)
