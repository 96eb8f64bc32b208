"""Where visitors come from, at ingestion: what /collect and /event store for referrers,
campaign parameters, User-Agents and addresses; the strict checks of the new fields (400
naming the field, nothing stored); the address and User-Agent never stored nor logged."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from datalook.extensions import db
from datalook.ingest import arrivals
from datalook.ingest.refusals import recorder_for
from datalook.models import Event, RefusedRequest
from tests.factories import make_key, make_site, make_user

CHROME_LINUX = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
MAC_SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Safari/605.1.15"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
US, DE, IN = "8.8.8.8", "85.214.132.117", "49.44.0.1"
DOMAIN = "shop.example"
ORIGIN = f"https://{DOMAIN}"
PAGEVIEW = {"event_name": "pageview", "page_path": "/landing"}
STORED = ("source", "channel", "medium", "campaign", "referrer", "device", "browser", "os")


@pytest.fixture
def site(app):
    """A site (shop.example, localhost:3000 allowed too) with its site key and a key."""
    with app.app_context():
        made = make_site(make_user(), DOMAIN)
        made.allowed_origins = json.dumps(["http://localhost:3000"])
        db.session.commit()
        key = make_key(made, rate_limit="100000 per 10 seconds")
        return made.id, made.site_key, key.token


def collect(client, site_key: str, body: dict, user_agent: str = CHROME_LINUX, ip: str = US):
    """POST /collect as the browser script does."""
    return client.post(
        f"/collect?site={site_key}",
        data=json.dumps(body),
        headers={"Origin": ORIGIN, "User-Agent": user_agent},
        content_type="text/plain",
        environ_base={"REMOTE_ADDR": ip},
    )


def send(client, token: str, body: dict, path: str = "/event"):
    """POST /event (or /events) with the key."""
    return client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})


def stored(app, site_id: int) -> list[dict]:
    """The acquisition columns of the site's events, oldest first."""
    columns = [getattr(Event, name) for name in arrivals.COLUMNS]
    with app.app_context():
        rows = db.session.execute(
            select(*columns).where(Event.site_id == site_id).order_by(Event.id)
        ).mappings()
        return [dict(row) for row in rows]


# --- what /collect stores ---------------------------------------------------------------------

COLLECT_CASES = [
    pytest.param(
        {"referrer": "https://www.google.com/"},
        CHROME_LINUX,
        US,
        {"source": "Google", "channel": "Organic Search", "referrer": "https://www.google.com/"}
        | {"device": "desktop", "browser": "Chrome", "os": "Linux", "country": "US"},
        id="google",
    ),
    pytest.param(
        {"referrer": "https://news.example.org/story?id=7#top"},
        CHROME_LINUX,
        DE,
        {"source": "news.example.org", "channel": "Referral", "country": "DE"}
        | {"referrer": "https://news.example.org/story"},
        id="referral-query-never-stored",
    ),
    pytest.param(
        {"referrer": "https://shop.example/pricing"},
        CHROME_LINUX,
        US,
        {"source": "Direct / None", "channel": "Direct", "referrer": ""},
        id="own-domain",
    ),
    pytest.param(
        {"referrer": "https://blog.shop.example/post"},
        CHROME_LINUX,
        US,
        {"source": "Direct / None", "channel": "Direct", "referrer": ""},
        id="own-subdomain",
    ),
    pytest.param(
        {"referrer": "http://localhost:3000/dev"},
        CHROME_LINUX,
        US,
        {"source": "Direct / None", "channel": "Direct", "referrer": ""},
        id="allowed-origin",
    ),
    pytest.param(
        {"referrer": "https://checkout.stripe.com/c/pay/cs_live_1"},
        CHROME_LINUX,
        US,
        {"source": "Direct / None", "channel": "Direct", "referrer": ""},
        id="payment-host",
    ),
    pytest.param(
        {"utm": {"source": "newsletter", "medium": "email", "campaign": "launch"}},
        IPHONE,
        IN,
        {"source": "Newsletter", "channel": "Email", "medium": "email", "campaign": "launch"}
        | {"device": "mobile", "browser": "Safari", "os": "iOS", "country": "IN"},
        id="newsletter-iphone",
    ),
    pytest.param(
        {"referrer": "https://l.facebook.com/", "utm": {"source": "fb", "medium": "cpc"}}
        | {"click_ids": ["fbclid"]},
        ANDROID,
        US,
        {"source": "Facebook", "channel": "Paid Social", "medium": "cpc", "device": "mobile"}
        | {"browser": "Chrome", "os": "Android"},
        id="paid-social-android",
    ),
    pytest.param(
        {"click_ids": ["gclid"]},
        CHROME_LINUX,
        US,
        {"source": "Google", "channel": "Paid Search", "referrer": ""},
        id="gclid-without-referrer",
    ),
    pytest.param(
        {"referrer": "https://t.co/abc"},
        CHROME_LINUX,
        "2001:4860:4860::8888",
        {"source": "Twitter", "channel": "Organic Social", "country": "US"},
        id="twitter-ipv6",
    ),
    pytest.param(
        {"screen_width": 820},
        MAC_SAFARI,
        "10.0.0.1",
        {"device": "tablet", "browser": "Safari", "os": "macOS", "country": ""},
        id="ipad-with-a-mac-user-agent-private-address",
    ),
    pytest.param(
        {"screen_width": 1440, "referrer": "", "utm": {"source": ""}},
        MAC_SAFARI,
        US,
        {"device": "desktop", "source": "Direct / None", "medium": "", "campaign": ""},
        id="mac-empty-values",
    ),
]


@pytest.mark.parametrize(("fields", "user_agent", "ip", "expected"), COLLECT_CASES)
def test_collect_stores_where_the_visit_came_from(
    app, client, site, fields, user_agent, ip, expected
):
    site_id, site_key, _token = site
    response = collect(client, site_key, {**PAGEVIEW, **fields}, user_agent, ip)
    assert response.status_code == 204, response.get_data(as_text=True)
    (row,) = stored(app, site_id)
    assert {name: row[name] for name in expected} == expected
    # "" for none: NULL is left to old events, and to region and city without a database.
    assert (row.pop("region"), row.pop("city")) == (None, None)
    assert None not in row.values()


# --- what /event stores from context -----------------------------------------------------------

EVENT_CASES = [
    pytest.param(
        {},
        {"source": "Direct / None", "channel": "Direct", "device": "", "browser": "", "os": ""}
        | {"country": "", "referrer": "", "medium": ""},
        id="no-context",
    ),
    pytest.param(
        {"context": {"ip": DE, "user_agent": IPHONE, "referrer": "https://www.bing.com/?q=x"}},
        {"source": "Bing", "channel": "Organic Search", "referrer": "https://www.bing.com/"}
        | {"device": "mobile", "browser": "Safari", "os": "iOS", "country": "DE"},
        id="full-context",
    ),
    pytest.param(
        {"context": {"utm": {"source": "google", "medium": "cpc", "term": "shoes"}}},
        {"source": "Google", "channel": "Paid Search", "medium": "cpc", "campaign": ""},
        id="utm-only",
    ),
    pytest.param(
        {"context": {"referrer": "https://www.shop.example/cart", "ip": "127.0.0.1"}},
        {"source": "Direct / None", "channel": "Direct", "referrer": "", "country": ""},
        id="own-site-and-loopback",
    ),
    pytest.param(
        {"context": {"referrer": "android-app://com.google.android.gm/"}},
        {"source": "Direct / None", "channel": "Direct", "referrer": ""},
        id="app-referrer-is-no-source",
    ),
    pytest.param(
        {"context": None},
        {"source": "Direct / None", "device": ""},
        id="null-context",
    ),
]


@pytest.mark.parametrize(("fields", "expected"), EVENT_CASES)
def test_event_context_gives_source_device_and_country(app, client, site, fields, expected):
    site_id, _key, token = site
    response = send(client, token, {**PAGEVIEW, "success_user_id": "u1", **fields})
    assert response.status_code == 204, response.get_data(as_text=True)
    (row,) = stored(app, site_id)
    assert {name: row[name] for name in expected} == expected


def test_a_batch_derives_each_event_and_refuses_bad_contexts_by_index(app, client, site):
    site_id, _key, token = site
    events = [
        {**PAGEVIEW, "context": {"utm": {"source": "newsletter"}}},
        {**PAGEVIEW, "context": {"ip": "999.1.1.1"}},
        {**PAGEVIEW, "context": {"referrer": "https://duckduckgo.com/", "ip": US}},
    ]
    answer = send(client, token, {"events": events}, "/events")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["accepted"] == 2
    assert [(e["index"], e["field"], e["code"]) for e in body["errors"]] == [
        (1, "context.ip", "invalid_ip")
    ]
    rows = stored(app, site_id)
    assert [(r["source"], r["country"]) for r in rows] == [("Newsletter", ""), ("DuckDuckGo", "US")]


# --- strict checks: 400 naming the field, nothing stored ----------------------------------------

INVALID_CONTEXTS = [
    pytest.param([], "context", "not_an_object", id="context-array"),
    pytest.param("1.2.3.4", "context", "not_an_object", id="context-string"),
    pytest.param({"ip": "1.2.3"}, "context.ip", "invalid_ip", id="ip-short"),
    pytest.param({"ip": "localhost"}, "context.ip", "invalid_ip", id="ip-name"),
    pytest.param({"ip": 16843009}, "context.ip", "not_a_string", id="ip-number"),
    pytest.param({"user_agent": 5}, "context.user_agent", "not_a_string", id="ua-number"),
    pytest.param({"user_agent": "a\nb"}, "context.user_agent", "control_characters", id="ua-ctl"),
    pytest.param({"user_agent": "u" * 1025}, "context.user_agent", "too_long", id="ua-long"),
    pytest.param({"referrer": "google.com"}, "context.referrer", "invalid_url", id="ref-relative"),
    pytest.param({"referrer": ["x"]}, "context.referrer", "not_a_string", id="ref-array"),
    pytest.param({"referrer": "h" * 2049}, "context.referrer", "too_long", id="ref-long"),
    pytest.param({"utm": "newsletter"}, "context.utm", "not_an_object", id="utm-string"),
    pytest.param({"utm": {"source": 3}}, "context.utm.source", "not_a_string", id="utm-number"),
    pytest.param(
        {"utm": {"campaign": "c" * 101}}, "context.utm.campaign", "too_long", id="utm-long"
    ),
    pytest.param({"utm": {"name": "x"}}, "context.utm.name", "unknown_field", id="utm-unknown"),
    pytest.param({"ua": "x"}, "context.ua", "unknown_field", id="context-unknown"),
]


@pytest.mark.parametrize(("context", "field", "code"), INVALID_CONTEXTS)
def test_an_invalid_context_is_refused_naming_the_field(app, client, site, context, field, code):
    site_id, _key, token = site
    response = send(client, token, {**PAGEVIEW, "context": context})
    assert response.status_code == 400
    errors = response.get_json()["error"]["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [(field, code)]
    assert stored(app, site_id) == []


INVALID_BROWSER_FIELDS = [
    pytest.param({"referrer": "www.google.com"}, "referrer", "invalid_url", id="relative"),
    pytest.param({"referrer": 7}, "referrer", "not_a_string", id="referrer-number"),
    pytest.param({"utm": []}, "utm", "not_an_object", id="utm-array"),
    pytest.param({"utm": {"source": True}}, "utm.source", "not_a_string", id="utm-bool"),
    pytest.param({"utm": {"medium": "m" * 101}}, "utm.medium", "too_long", id="utm-long"),
    pytest.param({"utm": {"id": "x"}}, "utm.id", "unknown_field", id="utm-unknown"),
    pytest.param({"click_ids": "gclid"}, "click_ids", "not_an_array", id="ids-string"),
    pytest.param({"click_ids": ["gclid", "x"]}, "click_ids", "invalid_choice", id="ids-unknown"),
    pytest.param({"screen_width": "390"}, "screen_width", "not_an_integer", id="width-string"),
    pytest.param({"screen_width": 390.5}, "screen_width", "not_an_integer", id="width-float"),
    pytest.param({"screen_width": -1}, "screen_width", "out_of_range", id="width-negative"),
    pytest.param({"context": {"ip": US}}, "context", "unknown_field", id="context-from-a-page"),
]


@pytest.mark.parametrize(("fields", "field", "code"), INVALID_BROWSER_FIELDS)
def test_collect_refuses_bad_acquisition_fields_naming_them(app, client, site, fields, field, code):
    site_id, site_key, _token = site
    response = collect(client, site_key, {**PAGEVIEW, **fields})
    assert response.status_code == 400
    errors = response.get_json()["error"]["errors"]
    assert [(e["field"], e["code"]) for e in errors] == [(field, code)]
    assert stored(app, site_id) == []


def test_browser_fields_on_event_are_unknown_and_point_to_context(client, site):
    _site_id, _key, token = site
    response = send(client, token, {**PAGEVIEW, "referrer": "https://a.example/", "utm": {}})
    errors = {e["field"]: e for e in response.get_json()["error"]["errors"]}
    assert set(errors) == {"referrer", "utm"}
    assert errors["referrer"]["code"] == "unknown_field"
    assert "context.referrer" in errors["referrer"]["message"]


def test_the_address_and_user_agent_are_never_stored_nor_logged(app, client, site):
    site_id, site_key, token = site
    address, agent = "85.214.132.117", IPHONE + " Marker/1.0"
    send(client, token, {**PAGEVIEW, "context": {"ip": address, "user_agent": agent}})
    collect(client, site_key, PAGEVIEW, agent, address)
    # A refused body with a context is logged for the live view, without them.
    context = {"ip": address, "user_agent": agent}
    refused = send(client, token, {**PAGEVIEW, "oops": 1, "context": context})
    assert refused.status_code == 400
    assert address not in refused.get_data(as_text=True)
    with app.app_context():
        recorder_for(app.extensions).flush(db.engine)
        excerpts = db.session.scalars(select(RefusedRequest.excerpt)).all()
        assert excerpts and all(address not in (x or "") for x in excerpts)
        assert all("Marker" not in (x or "") for x in excerpts)
        dump = "\n".join(
            repr(tuple(row)) for row in db.session.execute(select(Event.__table__)).all()
        )
    assert address not in dump and "Marker" not in dump and "85.214" not in dump
    assert [row["country"] for row in stored(app, site_id)] == ["DE", "DE"]
