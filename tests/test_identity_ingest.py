"""Joining anonymous browser visits to users, at ingestion: every browser event keeps its
anonymous id; an identified browser event links its own id to its user (the first link
wins); a live key's server event whose context names the visitor's address and User-Agent
links the day's id /collect computed for them (overriding a browser's link, never another
server's); contexts of days whose salt is gone join nothing, and the answer says so; the
links and the linked anonymous events go with an erasure of the user."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from sqlalchemy import select

from datalook import erasure
from datalook.analytics import identity
from datalook.browser import visitor
from datalook.extensions import db
from datalook.keys import apikeys
from datalook.models import KEY_KIND_TEST, Event, Site, VisitorLink, utcnow
from tests.conftest import add_site, csrf_from, sign_up
from tests.factories import make_site, make_user
from tests.test_acquisition_ingest import CHROME_LINUX, DOMAIN, IPHONE, collect, send

HOME = {"event_name": "pageview", "page_path": "/"}
PAID = {"event_name": "success", "name": "paid-customer", "success_value": 49.0}
A, B = "198.51.100.1", "198.51.100.2"


@pytest.fixture
def site(app):
    """A site with its site key, a live key and a test key."""
    with app.app_context():
        made = make_site(make_user(), DOMAIN)
        live = apikeys.create_key(made, "live", None)
        test = apikeys.create_key(made, "test", None, kind=KEY_KIND_TEST)
        return made.id, made.site_key, live.token, test.token


def events(app, site_id: int) -> list[tuple]:
    """(visitor_id, anonymous_id, page_path) of the site's events, oldest first."""
    with app.app_context():
        return [
            tuple(row)
            for row in db.session.execute(
                select(Event.visitor_id, Event.anonymous_id, Event.page_path)
                .where(Event.site_id == site_id)
                .order_by(Event.occurred_at, Event.id)
            )
        ]


def links(app, site_id: int) -> dict[str, tuple[str, str]]:
    """anonymous id -> (user id, origin) of the site's links."""
    with app.app_context():
        return {
            anonymous: (user, origin)
            for anonymous, user, origin in db.session.execute(
                select(VisitorLink.anonymous_id, VisitorLink.user_id, VisitorLink.origin).where(
                    VisitorLink.site_id == site_id
                )
            )
        }


def cookieless(app, site_id: int, address: str, user_agent: str, day=None) -> str:
    """The day's cookieless id of a browser, as /collect computes it."""
    with app.app_context(), db.engine.connect() as connection:
        salt = visitor.daily_salt(connection, day or utcnow().date())
        return visitor.visitor_id(salt, site_id, address, user_agent)


def apply_links(app) -> int:
    """Apply every pending link now (past the grace)."""
    with app.app_context():
        return identity.apply_pending(db.session(), utcnow() + identity.LINK_GRACE)


def test_browser_events_keep_their_anonymous_id_and_identified_ones_link_it(app, client, site):
    site_id, key, _, _ = site
    assert collect(client, key, HOME, ip=A).status_code == 204
    assert collect(client, key, {**HOME, "page_path": "/pricing"}, ip=A).status_code == 204
    mine = cookieless(app, site_id, A, CHROME_LINUX)
    assert [v for v, _, _ in events(app, site_id)] == [mine, mine]
    login = {**HOME, "page_path": "/login", "success_user_id": "user_42"}
    assert collect(client, key, login, ip=A).status_code == 204
    assert events(app, site_id)[-1] == ("u:user_42", mine, "/login")
    assert links(app, site_id) == {mine: ("user_42", "browser")}
    # The first link wins: the same browser identified as someone else links nothing new.
    other = {**HOME, "page_path": "/switch", "success_user_id": "user_7"}
    assert collect(client, key, other, ip=A).status_code == 204
    assert links(app, site_id) == {mine: ("user_42", "browser")}
    assert events(app, site_id)[-1] == ("u:user_7", mine, "/switch")  # its own user stays
    # A later anonymous event of the linked browser counts as its user from the start.
    assert collect(client, key, {**HOME, "page_path": "/later"}, ip=A).status_code == 204
    assert events(app, site_id)[-1] == ("u:user_42", mine, "/later")
    # Applying the link moves the earlier anonymous ones; identified ones keep their user.
    assert apply_links(app) == 2
    assert [v for v, _, _ in events(app, site_id)] == [
        "u:user_42",
        "u:user_42",
        "u:user_42",
        "u:user_7",
        "u:user_42",
    ]


def test_a_browser_moves_only_its_own_visits(app, client, site):
    site_id, key, _, _ = site
    assert collect(client, key, HOME, ip=A).status_code == 204
    assert collect(client, key, HOME, ip=B).status_code == 204
    assert collect(client, key, HOME, ip=A, user_agent=IPHONE).status_code == 204
    # Browser B claims user_42: only B's own id is linked, whatever it sends.
    claim = {**HOME, "success_user_id": "user_42"}
    assert collect(client, key, claim, ip=B).status_code == 204
    theirs = cookieless(app, site_id, B, CHROME_LINUX)
    assert set(links(app, site_id)) == {theirs}
    apply_links(app)
    visitors = [v for v, _, _ in events(app, site_id)]
    assert visitors.count("u:user_42") == 2  # B's pageview and B's claim
    assert cookieless(app, site_id, A, CHROME_LINUX) in visitors
    assert cookieless(app, site_id, A, IPHONE) in visitors


def test_a_server_context_links_the_days_visit_and_overrides_a_browser(app, client, site):
    site_id, key, live, _ = site
    assert collect(client, key, HOME, ip=A).status_code == 204
    assert collect(client, key, {**HOME, "success_user_id": "guess"}, ip=A).status_code == 204
    mine = cookieless(app, site_id, A, CHROME_LINUX)
    assert links(app, site_id) == {mine: ("guess", "browser")}
    context = {"ip": A, "user_agent": CHROME_LINUX}
    answer = send(
        client,
        live,
        {**PAID, "page_path": "/paid", "success_user_id": "user_42", "context": context},
    )
    assert answer.status_code == 204
    assert "DataLook-Visit-Not-Joined" not in answer.headers
    assert links(app, site_id) == {mine: ("user_42", "server")}
    # The server event itself keeps its user and stores no anonymous id, address or agent.
    assert events(app, site_id)[-1] == ("u:user_42", None, "/paid")
    # A second server's link does not override the first one.
    again = send(
        client,
        live,
        {**PAID, "page_path": "/paid", "success_user_id": "user_9", "context": context},
    )
    assert again.status_code == 204
    assert links(app, site_id) == {mine: ("user_42", "server")}
    apply_links(app)
    assert [v for v, _, p in events(app, site_id) if p == "/"] == ["u:user_42", "u:guess"]


def test_a_test_key_links_nothing_and_no_user_no_link(app, client, site):
    site_id, key, live, test = site
    context = {"ip": A, "user_agent": CHROME_LINUX}
    body = {**PAID, "page_path": "/paid", "success_user_id": "user_42", "context": context}
    assert send(client, test, body).status_code == 204
    anonymous = {**PAID, "page_path": "/paid", "context": context}
    assert send(client, live, anonymous).status_code == 204
    assert links(app, site_id) == {}


def test_a_context_of_a_day_without_its_salt_joins_nothing_and_says_so(app, client, site):
    site_id, _, live, _ = site
    context = {"ip": A, "user_agent": CHROME_LINUX}
    old = (utcnow() - timedelta(days=3)).replace(tzinfo=UTC).isoformat()
    body = {**PAID, "page_path": "/paid", "success_user_id": "user_42", "context": context}
    answer = send(client, live, {**body, "timestamp": old})
    assert answer.status_code == 204
    assert answer.headers["DataLook-Visit-Not-Joined"] == "too-old"
    batch = send(client, live, {"events": [body, {**body, "timestamp": old}]}, path="/events")
    assert batch.status_code == 200
    assert batch.get_json()["accepted"] == 2
    assert batch.headers["DataLook-Visit-Not-Joined"] == "too-old; events=1"
    # Today's joined: one link, of today's id.
    assert links(app, site_id) == {cookieless(app, site_id, A, CHROME_LINUX): ("user_42", "server")}
    # Yesterday's joins only while its salt exists (a browser visited that day).
    yesterday = (utcnow() - timedelta(days=1)).replace(tzinfo=UTC)
    late = send(client, live, {**body, "timestamp": yesterday.isoformat(), "success_user_id": "u2"})
    with app.app_context():
        kept = db.session.scalar(
            select(visitor.VisitorSalt.day).where(visitor.VisitorSalt.day == yesterday.date())
        )
    assert ("DataLook-Visit-Not-Joined" in late.headers) == (kept is None)


def test_erasing_a_user_erases_the_linked_anonymous_events_and_links(app, client, site):
    site_id, key, live, _ = site
    for ip in (A, B):
        assert collect(client, key, HOME, ip=ip).status_code == 204
    assert collect(client, key, {**HOME, "success_user_id": "user_42"}, ip=A).status_code == 204
    # B's link is not applied yet when the user is erased: its events go all the same.
    context = {"ip": B, "user_agent": CHROME_LINUX}
    body = {**PAID, "page_path": "/paid", "success_user_id": "user_42", "context": context}
    assert send(client, live, body).status_code == 204
    assert collect(client, key, {**HOME, "success_user_id": "other"}, ip=B).status_code == 204
    with app.app_context():
        done = erasure.erase_visitor(db.session.get(Site, site_id), "user_42", "test")
    assert done == 4  # A's pageview and login, B's pageview, the server's success
    assert events(app, site_id) == [("u:other", cookieless(app, site_id, B, CHROME_LINUX), "/")]
    assert links(app, site_id) == {}


def test_persistent_mode_keeps_the_scripts_id_and_the_default_ignores_it(app, client, site):
    site_id, key, _, _ = site
    kept = "5f0c9a526f7e4e559d0e1c2b3a4d5e6f"
    assert collect(client, key, {**HOME, "persistent_id": kept}, ip=A).status_code == 204
    assert events(app, site_id)[-1][1] == cookieless(app, site_id, A, CHROME_LINUX)
    with app.app_context():
        domain = db.session.get(Site, site_id).domain
    runner = app.test_cli_runner()
    done = runner.invoke(args=["sites", "set", domain, "--visitor-id", "persistent"])
    assert done.exit_code == 0, done.output
    shown = runner.invoke(args=["sites", "snippet", domain])
    assert "data-persistent" in shown.stdout
    body = {**HOME, "persistent_id": kept, "success_user_id": "user_42"}
    assert collect(client, key, body, ip=B).status_code == 204
    assert events(app, site_id)[-1][1] == f"p:{kept}"
    assert links(app, site_id) == {f"p:{kept}": ("user_42", "browser")}
    bad = collect(client, key, {**HOME, "persistent_id": "XYZ"}, ip=A)
    assert bad.status_code == 400
    assert bad.get_json()["error"]["errors"][0]["field"] == "persistent_id"
    refused = runner.invoke(args=["sites", "set", domain, "--visitor-id", "forever"])
    assert refused.exit_code != 0


@pytest.mark.parametrize(
    ("sent", "kept", "shown"),
    [
        ({"mode": "persistent"}, "persistent", "needs the visitor&#39;s consent"),
        ({"mode": "forever"}, "cookieless", "Choose cookieless or persistent"),
        ({}, "cookieless", "Choose cookieless or persistent"),
    ],
)
def test_the_settings_page_chooses_the_visitor_ids(app, client, sent, kept, shown):
    sign_up(client)
    site_id = add_site(client, "shop.example")
    page = client.get(f"/sites/{site_id}/quests/browser-sdk/").get_data(as_text=True)
    assert "Cookieless (the default)" in page
    answer = client.post(
        f"/sites/{site_id}/quests/browser-sdk/visitor-ids",
        data={**sent, "csrf_token": csrf_from(page)},
        follow_redirects=True,
    )
    text = answer.get_data(as_text=True)
    assert shown in text or shown.replace("&#39;", "'") in text
    with app.app_context():
        assert db.session.get(Site, site_id).visitor_ids == kept
    assert ("data-persistent" in text) == (kept == "persistent")
    # Without the form's CSRF token nothing changes.
    client.post(f"/sites/{site_id}/quests/browser-sdk/visitor-ids", data={"mode": "cookieless"})
    with app.app_context():
        assert db.session.get(Site, site_id).visitor_ids == kept
