"""The Stats API: read keys (dl_read_…) on every report endpoint, their cap, rate limit,
CLI, keys page, the /event refusal, and the docs page with its examples."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from datalook.analytics import query
from datalook.analytics.reports.serialise import REPORTS
from datalook.config import ConfigError, from_environ
from datalook.extensions import db
from datalook.keys import apikeys, tokens
from datalook.models import ApiKey, Site, User
from tests.conftest import add_site, post_form, sign_up
from tests.factories import bearer
from tests.test_funnels_api import save_funnel
from tests.test_openapi_reports import problems
from tests.test_postgres import pg_app  # noqa: F401 - the PostgreSQL fixture

READ_RE = re.compile(r"dl_read_[A-Za-z0-9]{12}_[A-Za-z0-9]{38}")
STEPS = [
    {"event_name": "pageview", "page_path": "/"},
    {"event_name": "pageview", "page_path": "/pricing"},
]
EVENT = {"event_name": "pageview", "page_path": "/", "success_user_id": "u1"}


def report_paths(funnel_id: int) -> list[str]:
    """Every report endpoint below /sites/<id>/ (the CSV exports included)."""
    funnel = urlencode([("step", json.dumps(s)) for s in STEPS])
    return [
        "stats.json?period=30d",
        "breakdown.json?dimension=source&period=30d",
        f"funnel.json?{funnel}",
        f"funnels/{funnel_id}.json?period=30d",
        "journeys.json?period=30d",
        "journeys/next.json?path=/&period=30d",
        "live.json",
        "attribution.json?period=30d&model=first&dimension=channel",
        *(f"reports/{name}.csv?period=30d" for name in REPORTS),
    ]


def make_key(app, site_id: int, name: str, kind: str) -> str:
    """Create a key of a kind through the service; return its token."""
    with app.app_context():
        return apikeys.create_key(db.session.get(Site, site_id), name, None, kind=kind).token


@pytest.fixture
def world(app, client):
    """Two owners with a site each; site A has a saved funnel, an event, a refused request,
    and read, live and revoked read keys; site B a read key of its own."""
    sign_up(client, "a@example.com")
    site_a = add_site(client, "a.example.com")
    funnel_id = save_funnel(client, site_a, "Home", STEPS)
    other = app.test_client()
    sign_up(other, "b@example.com")
    site_b = add_site(other, "b.example.com")
    keys = {
        "read": make_key(app, site_a, "Finance", "read"),
        "live": make_key(app, site_a, "Server", "live"),
        "test": make_key(app, site_a, "Tests", "test"),
        "revoked": make_key(app, site_a, "Old", "read"),
        "other_site": make_key(app, site_b, "Theirs", "read"),
    }
    with app.app_context():
        key_id = keys["revoked"].split("_")[2]
        apikeys.revoke_key(db.session.query(ApiKey).filter_by(key_id=key_id).one())
    assert client.post("/event", json=EVENT, headers=bearer(keys["live"])).status_code == 204
    refused = client.post("/event", json={"event_name": 5}, headers=bearer(keys["live"]))
    assert refused.status_code == 400
    return {"site": site_a, "other": site_b, "funnel": funnel_id, "keys": keys}


_addresses = iter(range(1, 60_000))


def from_new_address() -> dict:
    """A client address of its own, so that the per-address budget of failed attempts (60
    a minute, tested below) does not answer this table's refusals with 429."""
    n = next(_addresses)
    return {"REMOTE_ADDR": f"10.{n // 65536}.{n // 256 % 256}.{n % 256}"}


def _malformed(token: str) -> list[str]:
    """Authorization headers that are not a well-formed read key (each must be 401)."""
    return [
        "",
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer nonsense",
        f"Bearer {token[:-1]}{'A' if token[-1] != 'A' else 'B'}",  # checksum
        f"Bearer {token[:20]}",  # cut short
        f"Bearer {token} extra",
    ]


def test_read_keys_on_every_report_endpoint(app, client, world):
    """Right site 200 (same body as the owner's session); other site 404; revoked, live or
    test key, malformed 401; with a session cookie, a bad token still 401; no CORS."""
    site, keys = world["site"], world["keys"]
    anonymous = app.test_client()
    failures = []
    for path in report_paths(world["funnel"]):
        url = f"/sites/{site}/{path}"
        ok = anonymous.get(url, headers={**bearer(keys["read"]), "Origin": "https://evil.test"})
        if ok.status_code != 200:
            failures.append((url, "read", ok.status_code, ok.get_data(as_text=True)[:200]))
        if "Access-Control-Allow-Origin" in ok.headers:
            failures.append((url, "cors", ok.headers["Access-Control-Allow-Origin"]))
        if path.startswith(("stats", "breakdown", "journeys.json", "funnels/", "attribution")):
            # The same report as its owner sees (freshness aside: it is the moment's).
            own = client.get(url).get_json()
            theirs = ok.get_json()
            own.pop("freshness", None), theirs.pop("freshness", None)
            if own != theirs:
                failures.append((url, "differs from the session's"))
        cases = [
            (keys["other_site"], 404, "not_found"),
            (keys["revoked"], 401, "revoked_token"),
            (tokens.generate(kind="read").token, 401, "invalid_token"),  # well formed, unknown
            (keys["live"], 401, "wrong_key_kind"),
            (keys["test"], 401, "wrong_key_kind"),
        ]
        for token, status, code in cases:
            got = anonymous.get(url, headers=bearer(token), environ_base=from_new_address())
            # A CSV's 404 is the HTML error page (as for the session); every 401 is JSON.
            body = got.get_json(silent=True) or {"error": {"code": "not_found"}}
            if got.status_code != status or body.get("error", {}).get("code") != code:
                failures.append((url, token[:8], got.status_code, body))
            if code == "wrong_key_kind" and "read key" not in body["error"]["message"]:
                failures.append((url, "message", body["error"]["message"]))
        for header in _malformed(keys["read"]):
            # The owner's session cookie is sent too: a bad token never falls back to it.
            got = client.get(
                url, headers={"Authorization": header}, environ_base=from_new_address()
            )
            if got.status_code != 401 or "WWW-Authenticate" not in got.headers:
                failures.append((url, header[:30], got.status_code))
    assert failures == []


def test_guessing_read_keys_spends_the_address_budget(app, world):
    anonymous = app.test_client()
    url = f"/sites/{world['site']}/stats.json"
    codes = [anonymous.get(url, headers=bearer("dl_read_guess")).status_code for _ in range(61)]
    assert codes == [401] * 60 + [429]
    # The real key from another address still works.
    ok = anonymous.get(url, headers=bearer(world["keys"]["read"]), environ_base=from_new_address())
    assert ok.status_code == 200


def test_a_read_key_is_refused_by_the_events_api(client, world):
    for path, body in (("/event", EVENT), ("/events", {"events": [EVENT]})):
        answer = client.post(path, json=body, headers=bearer(world["keys"]["read"]))
        assert answer.status_code == 401
        error = answer.get_json()["error"]
        assert error["code"] == "wrong_key_kind"
        assert "live or test key" in error["message"]


def test_a_read_key_sees_the_live_view_without_refused_bodies(app, client, world):
    url = f"/sites/{world['site']}/live.json"
    own = [i for i in client.get(url).get_json()["items"] if i["kind"] == "refused"]
    anonymous = app.test_client()
    answer = anonymous.get(url, headers=bearer(world["keys"]["read"]))
    theirs = answer.get_json()["items"]
    # As documented (the site's keys listed include the read keys, kind "read").
    document = client.get("/openapi.json").get_json()
    assert problems(document, "/sites/{site_id}/live.json", "get", answer) == []
    assert "read" in {key["kind"] for key in answer.get_json()["keys"]}
    refused = [i for i in theirs if i["kind"] == "refused"]
    assert own and own[0]["excerpt"]  # the owner sees what was sent
    assert len(refused) == len(own) and all(i["excerpt"] is None for i in refused)
    assert any(i["kind"] == "event" for i in theirs)


def test_the_rate_limit_per_read_key(make_app):
    app = make_app(READ_KEY_RATE_LIMIT="3 per hour")
    client = app.test_client()
    sign_up(client)
    site = add_site(client)
    first, second = (make_key(app, site, name, "read") for name in ("One", "Two"))
    url = f"/sites/{site}/stats.json"
    anonymous = app.test_client()
    answers = [anonymous.get(url, headers=bearer(first)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "3"
    limited = answers[-1]
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 3000 <= int(limited.headers["Retry-After"]) <= 3600
    document = client.get("/openapi.json").get_json()
    for answer in (answers[0], limited):
        assert problems(document, "/sites/{site_id}/stats.json", "get", answer) == []
    # The other key has its own budget; the session is not limited by the keys'.
    assert anonymous.get(url, headers=bearer(second)).status_code == 200
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("value", ["lots", "600 per fortnight", "0 per hour", ""])
def test_the_read_key_limit_setting_is_validated(tmp_path, value):
    if value == "":
        assert from_environ({}, tmp_path)["READ_KEY_RATE_LIMIT"] == "600 per 3600 seconds"
        return
    with pytest.raises(ConfigError, match="READ_KEY_RATE_LIMIT"):
        from_environ({"READ_KEY_RATE_LIMIT": value}, tmp_path)


def test_read_keys_have_their_own_cap_of_ten(app):
    with app.app_context():
        user = User(email="cap@example.com", password_hash="x")
        site = Site(owner=user, domain="cap.example.com")
        db.session.add_all([user, site])
        db.session.commit()
        for n in range(apikeys.MAX_ACTIVE_KEYS):
            apikeys.create_key(site, f"live {n}", None)
        for n in range(apikeys.MAX_ACTIVE_READ_KEYS):
            assert apikeys.create_key(site, f"read {n}", None, kind="read").token.startswith(
                "dl_read_"
            )
        with pytest.raises(apikeys.KeyRefused, match="10 active read keys"):
            apikeys.create_key(site, "read 11", None, kind="read")
        with pytest.raises(apikeys.KeyRefused, match="10 active keys"):
            apikeys.create_key(site, "live 11", None, kind="test")


def test_the_cli_creates_a_read_key(app, client):
    sign_up(client)
    add_site(client, "cli.example.com")
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["keys", "create", "--site", "cli.example.com", "--name", "R", "--read"]
    )
    assert result.exit_code == 0, result.output
    token = result.output.strip()
    assert READ_RE.fullmatch(token)
    listed = runner.invoke(args=["keys", "list", "--site", "cli.example.com"]).output
    assert "\tread\tR\tactive" in listed and token not in listed
    both = runner.invoke(
        args=["keys", "create", "--site", "cli.example.com", "--name", "X", "--read", "--test"]
    )
    assert both.exit_code == 1 and "one of --test and --read" in both.output


def test_the_keys_page_creates_a_read_key_shown_once_with_examples(app, client):
    sign_up(client)
    site = add_site(client)
    page = client.get(f"/sites/{site}/keys/").get_data(as_text=True)
    assert "Create read key" in page and "0 of 10 active read keys" in page
    # Without the CSRF token nothing is created.
    refused = client.post(f"/sites/{site}/keys/", data={"name": "Finance", "kind": "read"})
    assert refused.status_code == 400
    posted = post_form(client, f"/sites/{site}/keys/", {"name": "Finance", "kind": "read"})
    assert posted.status_code == 303  # Post/Redirect/Get, as every new key
    shown = client.get(posted.headers["Location"])
    html = shown.get_data(as_text=True)
    assert "Your new read key" in html
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    token = READ_RE.search(html).group(0)
    assert f"/sites/{site}/stats.json" in html and html.count(token) > 10
    assert "Waiting for your first event" not in html
    for runtime in ("curl", "Python requests", "Node fetch"):
        assert runtime in html
    assert client.get(f"/sites/{site}/stats.json", headers=bearer(token)).status_code == 200
    listed = client.get(f"/sites/{site}/keys/").get_data(as_text=True)
    assert token not in listed and "1 of 10 active read keys" in listed


def test_the_docs_page_shows_examples_per_endpoint(app, client):
    sign_up(client)
    site = add_site(client)
    html = client.get(f"/docs/stats-api?site={site}").get_data(as_text=True)
    for path in (
        "stats.json",
        "breakdown.json",
        "funnel.json",
        "funnels/1.json",
        "journeys.json",
        "journeys/next.json",
        "live.json",
        "attribution.json",
        "reports/totals.csv",
    ):
        assert f"/sites/{site}/{path}" in html, path
    assert html.count('class="dl-snippets"') == 9
    assert "rule=paid-customer&amp;model=last&amp;dimension=source" in html
    assert 'class="pg-' in html  # highlighted by Pygments
    # Someone else's site id is not filled in (nor confirmed to exist).
    stranger = app.test_client()
    other = stranger.get(f"/docs/stats-api?site={site}").get_data(as_text=True)
    assert f"/sites/{site}/" not in other and "/sites/YOUR_SITE_ID/stats.json" in other


def test_every_report_operation_declares_both_security_schemes(client):
    document = client.get("/openapi.json").get_json()
    operations = [
        (path, op)
        for path, item in document["paths"].items()
        for op in item.values()
        if path.startswith("/sites/")
    ]
    assert len(operations) >= 8
    csv = document["paths"]["/sites/{site_id}/reports/{report}.csv"]["get"]
    assert csv["parameters"][1]["schema"]["enum"] == list(REPORTS)
    # The query parameters its parser reads, in its order.
    named = [
        document["components"]["parameters"][p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
        for p in csv["parameters"]
    ]
    read = [name for group in query.REPORTS["csv"] for name in query.GROUP_PARAMETERS[group]]
    assert [p["name"] for p in named if p["in"] == "query"] == read
    attribution = document["paths"]["/sites/{site_id}/attribution.json"]["get"]
    assert attribution["operationId"] == "getAttribution"
    assert attribution["security"] == [{"readKey": []}, {"sessionCookie": []}]
    for path, op in operations:
        assert op["security"] == [{"readKey": []}, {"sessionCookie": []}], path
        assert {"401", "404", "429"} <= set(op["responses"]), path
    scheme = document["components"]["securitySchemes"]["readKey"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"


def test_read_keys_and_a_shared_link_on_postgresql(pg_app):  # noqa: F811 - imported fixture
    """The read key's look-up (the compiled statement on the request's own connection) and
    the shared links' table on PostgreSQL."""
    client = pg_app.test_client()
    sign_up(client)
    site = add_site(client, "pg.example.com")
    read, live = make_key(pg_app, site, "R", "read"), make_key(pg_app, site, "L", "live")
    assert client.post("/event", json=EVENT, headers=bearer(live)).status_code == 204
    anonymous = pg_app.test_client()
    answer = anonymous.get(f"/sites/{site}/stats.json?period=30d", headers=bearer(read))
    assert answer.status_code == 200 and answer.get_json()["totals"]["events"] == 1
    assert anonymous.get(f"/sites/{site}/stats.json", headers=bearer(live)).status_code == 401
    created = post_form(client, f"/sites/{site}/shares/", {"name": "PG"})
    token = re.search(r"/share/([A-Za-z0-9_-]{43})", created.get_data(as_text=True)).group(1)
    assert anonymous.get(f"/share/{token}").status_code == 200


def test_read_key_secrets_never_reach_the_log(app, world, caplog):
    caplog.set_level(logging.DEBUG)
    anonymous = app.test_client()
    token = world["keys"]["read"]
    secret = token.rsplit("_", 1)[1]
    for header in (token, token[:-1] + "x", world["keys"]["revoked"]):
        anonymous.get(f"/sites/{world['site']}/stats.json", headers=bearer(header))
    with app.app_context():
        stored = db.session.scalars(select(ApiKey.secret_hash)).all()
    assert secret not in caplog.text and all(secret not in value for value in stored)
