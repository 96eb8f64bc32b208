"""Sites: adding by domain, listing, the dashboard shell, and isolation between owners."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from datalook.accounts.domains import InvalidDomain, normalise_domain
from datalook.extensions import db
from datalook.models import ApiKey, Site
from tests.conftest import add_site, csrf_from, post_form, sign_up


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("https://Example.com/", "example.com"),
        ("example.com", "example.com"),
        ("  WWW.Shop.Example.co.uk:8443/path?q=1 ", "www.shop.example.co.uk"),
        ("http://example.com.", "example.com"),
        ("münchen.de", "xn--mnchen-3ya.de"),
    ],
)
def test_domains_are_normalised(typed, stored):
    assert normalise_domain(typed) == stored


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "   ",
        "garbage",
        "a..b",
        "1.2.3.4",
        "-bad.com",
        "exa mple.com",
        "ftp://example.com",
        "javascript:alert(1)",
        "http://user:pw@example.com",
        "x" * 64 + ".com",
        "<script>.com",
    ],
)
def test_garbage_domains_are_refused(garbage):
    with pytest.raises(InvalidDomain):
        normalise_domain(garbage)


def test_add_site_then_dashboard_lists_quests(app, client):
    sign_up(client)
    site_id = add_site(client, "https://Example.com/")
    page = client.get(f"/sites/{site_id}/").get_data(as_text=True)
    assert "example.com" in page
    assert page.index("Send events from your backend") < page.index("Add the browser snippet")
    assert "No events yet" in page  # the empty state says what to do next
    assert "Coming later" in page
    listing = client.get("/sites/").get_data(as_text=True)
    assert f"/sites/{site_id}/" in listing


def test_garbage_domain_shows_message_and_stores_nothing(app, client):
    sign_up(client)
    response = post_form(client, "/sites/", {"domain": "not a domain"})
    assert response.status_code == 400
    assert "does not look like a domain" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Site)) == 0


def test_same_site_twice_is_refused(client):
    sign_up(client)
    add_site(client, "example.com")
    response = post_form(client, "/sites/", {"domain": "https://EXAMPLE.com"})
    assert response.status_code == 400
    assert "already added" in response.get_data(as_text=True)


def test_site_form_requires_csrf(app, client):
    sign_up(client)
    assert client.post("/sites/", data={"domain": "example.com"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Site)) == 0


def _site_routes(app):
    """Every URL rule that belongs to one site, with its methods."""
    for rule in app.url_map.iter_rules():
        if "site_id" in rule.arguments:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                yield rule, method


def test_every_site_route_is_404_for_another_user(app):
    owner, intruder = app.test_client(), app.test_client()
    sign_up(owner, "owner@example.com")
    site_id = add_site(owner, "owner-site.com")
    page = owner.get(f"/sites/{site_id}/keys/").get_data(as_text=True)
    owner.post(f"/sites/{site_id}/keys/", data={"name": "Prod", "csrf_token": csrf_from(page)})
    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.key_id))
    sign_up(intruder, "intruder@example.com")
    token = csrf_from(intruder.get("/sites/").get_data(as_text=True))

    checked = 0
    for rule, method in _site_routes(app):
        url = rule.build(
            {
                "site_id": site_id,
                "key_id": key_id,
                "funnel_id": 1,
                "invitation_id": 1,
                "reveal_id": 1,
                "user_id": 1,
                "link_id": 1,
            },
            append_unknown=False,
        )[1]
        response = intruder.open(
            url, method=method, data={"csrf_token": token, "name": "x", "expire_old_in": "now"}
        )
        assert response.status_code == 404, f"{method} {url} answered {response.status_code}"
        # and the owner can reach it (the route exists and is guarded, not just missing)
        checked += 1
    assert checked >= 10
    with app.app_context():
        key = db.session.scalar(select(ApiKey))
        assert key.revoked_at is None and key.expires_at is None
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_site_pages_need_login(app, client):
    for rule, method in _site_routes(app):
        if method == "GET":
            url = rule.build(
                {
                    "site_id": 1,
                    "key_id": "abc",
                    "funnel_id": 1,
                    "invitation_id": 1,
                    "reveal_id": 1,
                    "user_id": 1,
                    "link_id": 1,
                },
                append_unknown=False,
            )[1]
            assert client.get(url).status_code in (302, 401), url
