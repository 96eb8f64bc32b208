"""POST /collect: site keys, CORS per allowed origin, the /event field rules, PII, bots,
Do-Not-Track, the cookieless visitor id, the per-address limit; the script and the CLI."""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from datetime import timedelta

import pytest
from flask_migrate import upgrade
from sqlalchemy import select, text

from datalook.browser import settings, visitor
from datalook.browser.bots import is_bot
from datalook.browser.origins import InvalidOrigin, normalise_origin
from datalook.browser.script import script
from datalook.extensions import db
from datalook.ingest.collect import handle_collect
from datalook.models import Event, Site, VisitorSalt, utcnow
from tests.conftest import _make_app, add_site, csrf_from, sign_up
from tests.factories import event_count, make_site, make_user, stored_events
from tests.test_event_api import (
    INVALID,
    VALID,
    assert_envelope,
    assert_stored_204,
    event,
    resolved,
)
from tests.test_postgres import pg_app  # noqa: F401 - a fixture, used by name

CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)
ADDRESS = "203.0.113.7"
MAX_BODY = 16 * 1024


@dataclass(frozen=True)
class BrowserSite:
    """A site made for the browser tests."""

    id: int
    key: str
    domain: str
    origin: str


@pytest.fixture
def site(app) -> BrowserSite:
    """A user and a site, with its public site key."""
    with app.app_context():
        made = make_site(make_user(), "shop.example")
        return BrowserSite(made.id, made.site_key, made.domain, "https://shop.example")


def collect(
    client,
    site: BrowserSite,
    body,
    origin: str | None = "default",
    user_agent: str | None = CHROME,
    content_type: str | None = "text/plain;charset=UTF-8",
    address: str = ADDRESS,
    key: str | None = "default",
    headers: dict | None = None,
):
    """POST /collect like the script does (a beacon: text/plain, the page's Origin)."""
    if not isinstance(body, str | bytes):
        body = json.dumps(body)
    sent = dict(headers or {})
    if origin is not None:
        sent["Origin"] = site.origin if origin == "default" else origin
    if user_agent is not None:
        sent["User-Agent"] = user_agent
    query = "" if key is None else f"?site={site.key if key == 'default' else key}"
    return client.post(
        f"/collect{query}",
        data=body,
        headers=sent,
        content_type=content_type,
        environ_base={"REMOTE_ADDR": address},
    )


def preflight(client, site: BrowserSite, origin: str):
    """The CORS preflight a browser sends before a fetch with application/json."""
    return client.open(
        f"/collect?site={site.key}",
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


# --- the same field rules as /event (the tables of test_event_api) ---------------------------


@pytest.mark.parametrize(("changes", "expected"), VALID)
def test_valid_fields_are_stored_normalised(app, client, site, changes, expected):
    now = utcnow()
    assert_stored_204(collect(client, site, event(**resolved(changes, now))))
    (stored,) = stored_events(app, site.id)
    for name, value in resolved(expected, now).items():
        assert stored[name] == value, name
    assert stored["key_id"] is None  # a browser event, not a server key's


@pytest.mark.parametrize(("changes", "field", "code"), INVALID)
def test_invalid_fields_are_refused_naming_the_field(app, client, site, changes, field, code):
    body = event(**resolved(changes, utcnow()))
    error = assert_envelope(collect(client, site, body), 400, "invalid_request")
    assert [(item["field"], item["code"]) for item in error["errors"]] == [(field, code)]
    assert event_count(app) == 0


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"{", b'{"event_name": "custom",}', b"{'a': 1}", b"NaN", b"\xff\xfe{}", b"x"],
)
def test_malformed_json_is_invalid_json(app, client, site, body):
    assert_envelope(collect(client, site, body), 400, "invalid_json")
    assert event_count(app) == 0


@pytest.mark.parametrize("body", ["null", "[]", '"pageview"', "42", "true"])
def test_body_that_is_not_an_object_is_refused(app, client, site, body):
    error = assert_envelope(collect(client, site, body), 400, "invalid_request")
    assert [item["code"] for item in error["errors"]] == ["not_an_object"]
    assert event_count(app) == 0


@pytest.mark.parametrize(
    "content_type", ["text/plain", "text/plain;charset=UTF-8", "application/json"]
)
def test_beacon_and_json_content_types_are_accepted(client, site, content_type):
    assert_stored_204(collect(client, site, event(), content_type=content_type))


@pytest.mark.parametrize(
    "content_type", [None, "application/x-www-form-urlencoded", "multipart/form-data", "text/html"]
)
def test_other_content_types_are_refused_with_415(app, client, site, content_type):
    assert_envelope(collect(client, site, event(), content_type=content_type), 415)
    assert event_count(app) == 0


def test_body_over_16_kib_is_refused_with_413(app, client, site):
    body = json.dumps(event(properties={"k": "v"}))
    padded = body[:-1] + " " * (MAX_BODY + 1 - len(body)) + "}"
    assert_envelope(collect(client, site, padded), 413, "payload_too_large")
    assert_stored_204(collect(client, site, padded[: MAX_BODY - 1] + "}"))


def test_pii_keys_are_stripped_as_on_event(app, client, site):
    body = event(properties={"plan": "pro", "email": "a@b.c", "userPhone": "1", "SSN": "x"})
    response = collect(client, site, body)
    assert_stored_204(response)
    assert response.headers["DataLook-Stripped-Keys"] == "email, userPhone, SSN"
    assert "DataLook-Stripped-Keys" in response.headers["Access-Control-Expose-Headers"]
    (stored,) = stored_events(app, site.id)
    assert stored["properties"] == {"plan": "pro"}
    assert stored["stripped_keys"] == ["email", "userPhone", "SSN"]


def test_repeated_event_id_is_stored_once(app, client, site):
    assert_stored_204(collect(client, site, event(event_id="abc123")))
    again = collect(client, site, event(event_id="abc123"))
    assert again.headers["DataLook-Duplicate"] == "true"
    assert len(stored_events(app, site.id)) == 1


# --- site keys and origins -------------------------------------------------------------------


def test_missing_site_key_is_a_400_naming_it(app, client, site):
    error = assert_envelope(collect(client, site, event(), key=None), 400, "invalid_request")
    assert error["errors"][0]["field"] == "site"
    assert event_count(app) == 0


@pytest.mark.parametrize("key", ["dls_unknown", "x" * 40, "dl_live_abc_def"])
def test_unknown_site_key_is_refused(app, client, site, key):
    assert_envelope(collect(client, site, event(), key=key), 403, "invalid_site_key")
    assert event_count(app) == 0


def test_a_regenerated_key_revokes_the_old_one(app, client, site):
    with app.app_context():
        row = db.session.get(Site, site.id)
        new_key = settings.regenerate_site_key(row)
        db.session.commit()
    assert_envelope(collect(client, site, event()), 403, "invalid_site_key")
    assert_stored_204(collect(client, site, event(), key=new_key))


def test_site_keys_are_distinct_and_not_server_tokens(app):
    with app.app_context():
        owner = make_user()
        keys = {make_site(owner).site_key for _ in range(5)}
    assert len(keys) == 5
    assert all(re.fullmatch(r"dls_[A-Za-z0-9_-]{24}", key) for key in keys)


@pytest.mark.parametrize(
    "origin", ["https://shop.example", "http://shop.example", "https://SHOP.example:443"]
)
def test_the_sites_domain_is_allowed_by_default(client, site, origin):
    response = collect(client, site, event(), origin=origin)
    assert_stored_204(response)
    assert response.headers["Access-Control-Allow-Origin"] == origin
    assert response.headers["Vary"] == "Origin"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "https://shop.example.evil.example",
        "https://www.shop.example",
        "http://localhost:3000",
        "https://shop.example:8443",
        "null",
        "",
        None,
    ],
)
def test_other_origins_are_refused_and_nothing_is_stored(app, client, site, origin):
    response = collect(client, site, event(), origin=origin)
    assert_envelope(response, 403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert event_count(app) == 0


def test_added_development_origins_are_allowed(app, client, site):
    with app.app_context():
        row = db.session.get(Site, site.id)
        settings.add_origin(row, "http://localhost:3000/")
        settings.add_origin(row, "http://127.0.0.1:8080")
        db.session.commit()
    for origin in ("http://localhost:3000", "http://127.0.0.1:8080"):
        assert_stored_204(collect(client, site, event(), origin=origin))
    assert_envelope(collect(client, site, event(), origin="http://localhost:3001"), 403)


def test_preflight_is_granted_to_allowed_origins_only(client, site):
    granted = preflight(client, site, "https://shop.example")
    assert granted.status_code == 204
    assert granted.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert granted.headers["Access-Control-Allow-Methods"] == "POST"
    assert "content-type" in granted.headers["Access-Control-Allow-Headers"].lower()
    refused = preflight(client, site, "https://evil.example")
    assert refused.status_code == 403
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_no_cookie_even_for_a_logged_in_browser(client, site):
    sign_up(client, "someone@example.com")
    response = collect(client, site, event())
    assert_stored_204(response)
    assert "Set-Cookie" not in response.headers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://Shop.Example/", "https://shop.example"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("https://example.com:443", "https://example.com"),
        ("http://example.com:80", "http://example.com"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
    ],
)
def test_origins_are_normalised(text, expected):
    assert normalise_origin(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "shop.example",
        "ftp://shop.example",
        "https://shop.example/path",
        "https://",
        "https://a:99999",
    ],
)
def test_what_is_not_an_origin_is_refused(text):
    with pytest.raises(InvalidOrigin):
        normalise_origin(text)


# --- bots and Do-Not-Track -------------------------------------------------------------------


@pytest.mark.parametrize(
    "user_agent",
    [
        CHROME.replace("Chrome/", "HeadlessChrome/"),
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "curl/8.5.0",
        "python-requests/2.32.3",
        "Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome-Lighthouse",
        "",
        None,
    ],
)
def test_bots_and_headless_browsers_are_not_counted(app, client, site, user_agent):
    response = collect(client, site, event(), user_agent=user_agent)
    assert_stored_204(response)
    assert response.headers["DataLook-Ignored"] == "bot"
    assert event_count(app) == 0


@pytest.mark.parametrize("user_agent", [CHROME, FIREFOX, SAFARI])
def test_real_browsers_are_counted(user_agent):
    assert not is_bot(user_agent)


@pytest.mark.parametrize("header", [{"DNT": "1"}, {"Sec-GPC": "1"}])
def test_do_not_track_is_respected_when_the_owner_turns_it_on(app, client, site, header):
    assert_stored_204(collect(client, site, event(), headers=header))
    assert event_count(app) == 1  # off by default: counted
    with app.app_context():
        db.session.get(Site, site.id).respect_dnt = True
        db.session.commit()
    response = collect(client, site, event(), headers=header)
    assert response.headers["DataLook-Ignored"] == "do-not-track"
    assert event_count(app) == 1
    assert_stored_204(collect(client, site, event(), headers={"DNT": "0"}))
    assert event_count(app) == 2


# --- the cookieless visitor id ---------------------------------------------------------------


def test_a_visitor_keeps_one_cookieless_id_all_day(app, client, site):
    for path in ("/a", "/b", "/c"):
        assert_stored_204(collect(client, site, event(page_path=path)))
    ids = {stored["visitor_id"] for stored in stored_events(app, site.id)}
    assert len(ids) == 1
    (only,) = ids
    assert re.fullmatch(r"c:[0-9a-f]{32}", only)


@pytest.mark.parametrize(
    "change", [{"user_agent": FIREFOX}, {"address": "198.51.100.1"}], ids=["agent", "address"]
)
def test_another_browser_or_address_is_another_visitor(app, client, site, change):
    assert_stored_204(collect(client, site, event()))
    assert_stored_204(collect(client, site, event(), **change))
    assert len({stored["visitor_id"] for stored in stored_events(app, site.id)}) == 2


def test_the_address_is_never_stored(app, client, site):
    assert_stored_204(collect(client, site, event(properties={"plan": "x"})))
    with app.app_context():
        row = db.session.scalars(select(Event)).one()
        values = [str(getattr(row, column.key)) for column in Event.__table__.columns]
    assert not any(ADDRESS in value for value in values)


def test_a_user_id_makes_the_visitor_the_user(app, client, site):
    assert_stored_204(collect(client, site, event(success_user_id="user_42")))
    assert stored_events(app, site.id)[0]["visitor_id"] == "u:user_42"


def test_the_same_browser_is_another_visitor_on_another_site_and_another_day(app, site):
    with app.app_context():
        other_id = make_site(make_user(), "other.example").id
        now = utcnow()
        salt_today = visitor.daily_salt(db.session.connection(), now.date())
        salt_tomorrow = visitor.daily_salt(db.session.connection(), (now + timedelta(1)).date())
    same = visitor.visitor_id(salt_today, site.id, ADDRESS, CHROME)
    assert same == visitor.visitor_id(salt_today, site.id, ADDRESS, CHROME)
    assert same != visitor.visitor_id(salt_today, other_id, ADDRESS, CHROME)
    assert same != visitor.visitor_id(salt_tomorrow, site.id, ADDRESS, CHROME)


def test_the_daily_salt_is_shared_through_the_database_and_old_ones_are_deleted(app):
    today = utcnow().date()
    with app.app_context():
        connection = db.session.connection()
        first = visitor.daily_salt(connection, today - timedelta(days=3))
        salt = visitor.daily_salt(connection, today)
        visitor._known.clear()  # another process: nothing cached
        assert visitor.daily_salt(connection, today) == salt != first
        days = db.session.scalars(select(VisitorSalt.day)).all()
    assert days == [today]


# --- the per-address limit -------------------------------------------------------------------


def test_one_address_cannot_flood_a_site(make_app):
    app = make_app(COLLECT_ADDRESS_LIMIT="3 per minute")
    with app.app_context():
        made = make_site(make_user(), "shop.example")
        site = BrowserSite(made.id, made.site_key, made.domain, "https://shop.example")
    client = app.test_client()
    for _ in range(3):
        assert_stored_204(collect(client, site, event()))
    refused = collect(client, site, event())
    assert_envelope(refused, 429, "rate_limited")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["Access-Control-Allow-Origin"] == site.origin  # the page can read it
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]
    assert_stored_204(collect(client, site, event(), address="198.51.100.2"))
    assert event_count(app) == 4


def test_guessing_site_keys_runs_into_the_failed_authentication_limit(app, client, site):
    answers = [collect(client, site, event(), key=f"dls_guess{n}").status_code for n in range(61)]
    assert answers[:60] == [403] * 60
    assert answers[60] == 429
    assert_stored_204(collect(client, site, event(), address="198.51.100.3"))


# --- the function behind the route -----------------------------------------------------------


def test_handle_collect_needs_no_flask_request(app, site):
    context = app.wsgi_app.ingestion.context  # the ingestion app's own (no Flask in it)
    response = handle_collect(
        context,
        "POST",
        f"site={site.key}",
        {"origin": site.origin, "user-agent": CHROME, "content-type": "text/plain"},
        json.dumps({"event_name": "pageview", "page_path": "/plain"}).encode(),
        ADDRESS,
    )
    assert response.status_code == 204
    assert [e["page_path"] for e in stored_events(app, site.id)] == ["/plain"]


# --- the script ------------------------------------------------------------------------------


def test_the_script_stays_within_2_kib_gzipped():
    content, _ = script()
    assert len(gzip.compress(content, compresslevel=9)) <= 2048


def test_the_script_stores_something_only_in_persistent_mode():
    text = script()[0].decode()
    for forbidden in ("document.cookie", "sessionStorage", "indexedDB"):
        assert forbidden not in text
    # The cookie and localStorage are touched only inside the persistent mode's branch (the
    # browser tests check that a default page stores nothing).
    branch = text.index('if(me.hasAttribute("data-persistent")){')
    end = text.index("function send(")
    for stored in ("d.cookie", "localStorage"):
        assert branch < text.index(stored) < end
        assert text.count(stored) == text[branch:end].count(stored)


def test_the_versioned_script_is_cached_for_a_year(client):
    content, version = script()
    versioned = client.get(f"/js/datalook.js?v={version}")
    assert versioned.status_code == 200
    assert versioned.data == content
    assert versioned.mimetype == "text/javascript"
    assert "immutable" in versioned.headers["Cache-Control"]
    assert "max-age=31536000" in versioned.headers["Cache-Control"]
    assert "Set-Cookie" not in versioned.headers
    bare = client.get("/js/datalook.js")
    assert bare.headers["Cache-Control"] == "public, max-age=300"
    again = client.get("/js/datalook.js", headers={"If-None-Match": versioned.headers["ETag"]})
    assert again.status_code == 304


# --- the CLI ---------------------------------------------------------------------------------


def test_cli_snippet_prints_the_tag_alone(make_app, site):
    app = make_app(PUBLIC_URL="https://datalook.example")
    with app.app_context():
        site_key = make_site(make_user(), "cli.example").site_key
    result = app.test_cli_runner().invoke(args=["sites", "snippet", "cli.example"])
    assert result.exit_code == 0, result.output
    version = script()[1]
    assert result.stdout == (
        f'<script defer src="https://datalook.example/js/datalook.js?v={version}" '
        f'data-site="{site_key}"></script>\n'
    )


def test_cli_snippet_without_public_url_says_where_it_points(make_app):
    app = make_app(PUBLIC_URL=None, PORT=5000)
    with app.app_context():
        make_site(make_user(), "local.example")
    result = app.test_cli_runner().invoke(args=["sites", "snippet", "local.example"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith('<script defer src="http://127.0.0.1:5000/js/datalook.js?v=')
    assert result.stdout.count("\n") == 1
    assert "PUBLIC_URL is not set" in result.stderr


def test_cli_set_adds_and_removes_origins_and_the_dnt_setting(app, site):
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=[
            "sites",
            "set",
            "shop.example",
            "--allowed-origin",
            "http://localhost:3000",
            "--allowed-origin",
            "https://www.shop.example/",
            "--respect-dnt",
        ]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        row = db.session.get(Site, site.id)
        assert json.loads(row.allowed_origins) == [
            "http://localhost:3000",
            "https://www.shop.example",
        ]
        assert row.respect_dnt is True
    result = runner.invoke(
        args=["sites", "set", "shop.example", "--remove-origin", "http://localhost:3000"]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert json.loads(db.session.get(Site, site.id).allowed_origins) == [
            "https://www.shop.example"
        ]


@pytest.mark.parametrize(
    "args",
    [
        ["--allowed-origin", "localhost:3000"],
        ["--allowed-origin", "https://x.example/path"],
        ["--remove-origin", "https://never.example"],
    ],
)
def test_cli_set_refuses_bad_origins(app, site, args):
    result = app.test_cli_runner().invoke(args=["sites", "set", "shop.example", *args])
    assert result.exit_code == 1
    assert "Error:" in result.stderr


def test_cli_regenerate_site_key(app, client, site):
    result = app.test_cli_runner().invoke(args=["sites", "regenerate-site-key", "shop.example"])
    assert result.exit_code == 0, result.output
    assert site.key not in result.stdout
    new_key = re.search(r'data-site="([^"]+)"', result.stdout).group(1)
    assert_envelope(collect(client, site, event()), 403, "invalid_site_key")
    assert_stored_204(collect(client, site, event(), key=new_key))


# --- the quest -------------------------------------------------------------------------------


@pytest.fixture
def owned(app, client):
    """A logged-in owner's site, with its key."""
    sign_up(client)
    site_id = add_site(client, "shop.example")
    with app.app_context():
        key = db.session.get(Site, site_id).site_key
    return BrowserSite(site_id, key, "shop.example", "https://shop.example")


def test_quest_page_shows_the_snippet_with_the_site_key(client, owned):
    listing = client.get(f"/sites/{owned.id}/quests/").get_data(as_text=True)
    assert f"/sites/{owned.id}/quests/browser-sdk/" in listing
    page = client.get(f"/sites/{owned.id}/quests/browser-sdk/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"data-site=&#34;{owned.key}&#34;" in html
    assert "/js/datalook.js?v=" in html
    assert "&lt;head&gt;" in html
    assert "data-status-url" in html


def test_quest_waits_for_the_first_pageview_then_is_done(app, client, owned):
    status_url = f"/sites/{owned.id}/quests/browser-sdk/status.json"
    assert client.get(status_url).get_json()["received"] is False
    other = app.test_client()
    assert_stored_204(collect(other, owned, event(event_name="custom")))
    assert client.get(status_url).get_json()["received"] is False  # not a pageview
    assert_stored_204(collect(other, owned, event(event_name="pageview", page_path="/pricing")))
    assert_stored_204(collect(other, owned, event(event_name="pageview", page_path="/later")))
    body = client.get(status_url).get_json()
    assert body["received"] is True
    assert body["event"]["page_path"] == "/pricing"
    assert body["dashboard_url"] == f"/sites/{owned.id}/"
    listing = client.get(f"/sites/{owned.id}/quests/").get_data(as_text=True)
    assert re.search(
        r"Add the browser snippet</a></h[23]>\s*<p[^>]*>[^<]*</p>\s*</div>\s*"
        r'<span class="badge badge-done">',
        listing,
    )


def test_quest_pages_are_404_to_anyone_but_the_owner(app, client, owned):
    stranger = app.test_client()
    sign_up(stranger, "stranger@example.com")
    for url in ("/", "/status.json"):
        assert stranger.get(f"/sites/{owned.id}/quests/browser-sdk{url}").status_code == 404
    form_page = stranger.get("/sites/").get_data(as_text=True)
    token = csrf_from(form_page)
    response = stranger.post(
        f"/sites/{owned.id}/quests/browser-sdk/site-key", data={"csrf_token": token}
    )
    assert response.status_code == 404


def _form_post(client, site_id: int, action: str, data: dict):
    """Post one of the quest page's forms with the page's CSRF token."""
    page = client.get(f"/sites/{site_id}/quests/browser-sdk/").get_data(as_text=True)
    return client.post(
        f"/sites/{site_id}/quests/browser-sdk/{action}",
        data={**data, "csrf_token": csrf_from(page)},
    )


def test_quest_forms_add_and_remove_origins(app, client, owned):
    assert (
        _form_post(client, owned.id, "origins", {"origin": "http://localhost:3000"}).status_code
        == 302
    )
    assert "<code>http://localhost:3000</code>" in client.get(
        f"/sites/{owned.id}/quests/browser-sdk/"
    ).get_data(as_text=True)
    bad = _form_post(client, owned.id, "origins", {"origin": "not an origin"})
    assert bad.status_code == 400
    assert "an origin is http(s)://host" in bad.get_data(as_text=True)
    removed = _form_post(client, owned.id, "origins/remove", {"origin": "http://localhost:3000"})
    assert removed.status_code == 302
    with app.app_context():
        assert db.session.get(Site, owned.id).allowed_origins is None


def test_quest_forms_toggle_dnt_and_make_a_new_key(app, client, owned):
    assert _form_post(client, owned.id, "do-not-track", {"respect": "on"}).status_code == 302
    assert _form_post(client, owned.id, "site-key", {}).status_code == 302
    with app.app_context():
        row = db.session.get(Site, owned.id)
        assert row.respect_dnt is True
        assert row.site_key != owned.key
    html = client.get(f"/sites/{owned.id}/quests/browser-sdk/").get_data(as_text=True)
    assert "data-respect-dnt" in html


def test_quest_forms_need_the_csrf_token(app, client, owned):
    response = client.post(f"/sites/{owned.id}/quests/browser-sdk/site-key")
    assert response.status_code == 400
    with app.app_context():
        assert db.session.get(Site, owned.id).site_key == owned.key


def test_docs_page_explains_the_cookieless_identity_and_the_bot_rule(client):
    html = client.get("/docs/browser-sdk").get_data(as_text=True)
    for fact in (
        "no cookie",
        "consent banner",
        "daily",
        "never stored",
        "HeadlessChrome",
        "data-datalook-click",
        "datalook.identify",
        "sendBeacon",
        "--allowed-origin",
    ):
        assert fact in html, fact


# --- PostgreSQL and the migration ------------------------------------------------------------


def test_collect_on_postgresql(pg_app):  # noqa: F811 - the imported fixture
    with pg_app.app_context():
        made = make_site(make_user(), "pg.example")
        site = BrowserSite(made.id, made.site_key, made.domain, "https://pg.example")
    client = pg_app.test_client()
    for path in ("/a", "/b"):
        assert_stored_204(collect(client, site, event(event_name="pageview", page_path=path)))
    assert_envelope(collect(client, site, event(), origin="https://evil.example"), 403)
    events = stored_events(pg_app, site.id)
    assert [e["page_path"] for e in events] == ["/a", "/b"]
    assert len({e["visitor_id"] for e in events}) == 1
    with pg_app.app_context():
        row = db.session.get(Site, site.id)
        assert row.first_pageview_path == "/a"
        assert db.session.scalars(select(VisitorSalt.day)).all() == [utcnow().date()]


def test_the_migration_gives_existing_sites_a_key(tmp_path):
    instance = tmp_path / "old"
    app = _make_app(instance)
    with app.app_context():
        upgrade(revision="0003")
        db.session.execute(
            text(
                "INSERT INTO users (email, password_hash, created_at) "
                "VALUES ('a@example.com', 'x', '2026-01-01')"
            )
        )
        for domain in ("one.example", "two.example"):
            db.session.execute(
                text(
                    "INSERT INTO sites (owner_id, domain, created_at, key_serial) "
                    "VALUES (1, :domain, '2026-01-01', 0)"
                ),
                {"domain": domain},
            )
        db.session.commit()
        upgrade()
        rows = db.session.execute(select(Site.site_key, Site.respect_dnt)).all()
        db.engine.dispose()
    keys = [key for key, _ in rows]
    assert len(set(keys)) == 2 and all(key.startswith("dls_") for key in keys)
    assert [dnt for _, dnt in rows] == [False, False]


# --- CORS of every answer ----------------------------------------------------------------------
# Before a site is identified the answer says nothing about any site: any page may read it
# ("*", never with credentials). Once the site is known, its allowed origins decide: the
# page's origin echoed on every answer, or no grant at all for an origin it did not allow.

PAGE = "https://shop.example"
CORS_CASES = [
    # (label, how to ask, status, Access-Control-Allow-Origin or None)
    ("no site key", {"key": None}, 400, "*"),
    ("unknown site key", {"key": "dls_nosuchkey"}, 403, "*"),
    ("site key too long to exist", {"key": "x" * 40}, 403, "*"),
    ("origin not allowed", {"origin": "https://evil.example"}, 403, None),
    ("no origin", {"origin": None}, 403, None),
    ("stored", {}, 204, PAGE),
    ("invalid event", {"body": {"event_name": "sale", "page_path": "/"}}, 400, PAGE),
    ("not json", {"body": "{"}, 400, PAGE),
    ("wrong media type", {"content_type": "text/html"}, 415, PAGE),
    ("too large", {"body": "x" * (MAX_BODY + 1)}, 413, PAGE),
]


@pytest.mark.parametrize(("label", "ask", "status", "allowed"), CORS_CASES)
def test_cors_of_each_answer(client, site, label, ask, status, allowed):
    ask = dict(ask)
    body = ask.pop("body", event())
    response = collect(client, site, body, **ask)
    assert response.status_code == status, response.get_data(as_text=True)[:200]
    assert response.headers.get("Access-Control-Allow-Origin") == allowed
    assert "Access-Control-Allow-Credentials" not in response.headers
    if allowed is not None:
        assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
    if allowed not in (None, "*"):
        assert response.headers["Vary"] == "Origin"


@pytest.mark.parametrize(
    ("label", "key", "origin", "status", "allowed"),
    [
        ("allowed", "default", PAGE, 204, PAGE),
        ("no site key", None, PAGE, 400, "*"),
        ("unknown site key", "dls_nosuchkey", PAGE, 403, "*"),
        ("origin not allowed", "default", "https://evil.example", 403, None),
    ],
)
def test_cors_of_each_preflight(client, site, label, key, origin, status, allowed):
    query = "" if key is None else f"?site={site.key if key == 'default' else key}"
    response = client.open(
        f"/collect{query}",
        method="OPTIONS",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == status
    assert response.headers.get("Access-Control-Allow-Origin") == allowed
    # Only an allowed origin's preflight lets a fetch with application/json be sent.
    assert ("Access-Control-Allow-Methods" in response.headers) == (status == 204)


def test_key_guessing_429_is_readable_by_any_page(client, site):
    for n in range(61):
        refused = collect(client, site, event(), key=f"guess{n}")
    assert_envelope(refused, 429, "rate_limited")
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in refused.headers["Access-Control-Expose-Headers"]


@pytest.mark.parametrize(
    ("fails", "allowed"),
    [("datalook.ingest.collect._site", "*"), ("datalook.ingest.storage.store", PAGE)],
)
def test_503_carries_the_cors_of_how_far_the_request_got(client, site, monkeypatch, fails, allowed):
    from sqlalchemy.exc import OperationalError

    def unavailable(*args, **kwargs):
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    monkeypatch.setattr(fails, unavailable)
    response = collect(client, site, event())
    assert_envelope(response, 503, "unavailable")
    assert response.headers["Access-Control-Allow-Origin"] == allowed
    assert "Retry-After" in response.headers["Access-Control-Expose-Headers"]
