"""After log-in, ?next= is followed only to a path on this site; anything else goes home."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest

from tests.conftest import csrf_from, sign_up

HOME = "/sites/"

# (raw query value, as an attacker would write it in the link) -> refused: Location is HOME.
REFUSED = [
    "/%09/evil.example/x",  # a tab between the slashes: browsers drop it
    "/%0A/evil.example/x",  # a line feed, dropped the same way
    "/%0D/evil.example/x",  # a carriage return
    "%0D%0ALocation:%20https://evil.example/",  # header injection attempt
    "/x%0D%0ASet-Cookie:%20a=b",  # CR/LF inside an otherwise local path
    "//evil.example/x",
    "%2F%2Fevil.example/x",  # encoded slashes
    "/%2Fevil.example/x",
    "///evil.example/x",
    "/\\evil.example/x",  # backslash: read as a slash by browsers
    "/%5Cevil.example/x",
    "%5C%5Cevil.example/x",
    "/%EF%BC%8Fevil.example/x",  # U+FF0F fullwidth solidus
    "/%E2%88%95evil.example/x",  # U+2215 division slash
    "%EF%BC%8F%EF%BC%8Fevil.example",
    "https://evil.example/x",
    "http:evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt%3Aalert(1)",
    "data:text/html,hi",
    "%20//evil.example/x",  # a leading space
    "/%20/evil.example/x",
    "evil.example/x",  # not a path
    "/%00/evil.example",
    "",
]

# Local paths that are followed as they are.
FOLLOWED = [
    ("/sites/", "/sites/"),
    ("/sites/12/keys", "/sites/12/keys"),
    ("/sites/?page=2%26x%3D1", "/sites/?page=2&x=1"),
    ("/%252F%252Fevil.example", "/%2F%2Fevil.example"),  # doubly encoded: a plain local path
]


def log_in_with_next(client, raw_next: str):
    """Log out, then log in through /login?next=<raw_next>; return the response."""
    page = client.get("/sites/")
    if page.status_code == 200:  # logged in: log out first
        client.post("/logout", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    form = client.get("/login").get_data(as_text=True)
    return client.post(
        f"/login?next={raw_next}",
        data={
            "email": "owner@example.com",
            "password": "correct horse battery",
            "csrf_token": csrf_from(form),
        },
    )


@pytest.fixture
def owner(client):
    """A client whose account exists (and is logged in)."""
    sign_up(client)
    return client


@pytest.mark.parametrize("raw_next", REFUSED)
def test_next_outside_this_site_is_refused(owner, raw_next):
    response = log_in_with_next(owner, raw_next)
    assert response.status_code == 302
    assert response.headers["Location"] == HOME
    assert "Set-Cookie: a=b" not in str(response.headers)


@pytest.mark.parametrize(("raw_next", "location"), FOLLOWED)
def test_local_next_is_followed(owner, raw_next, location):
    response = log_in_with_next(owner, raw_next)
    assert response.status_code == 302
    assert response.headers["Location"] == location
    assert not urlsplit(response.headers["Location"]).netloc


def test_login_required_pages_come_back_after_log_in(client):
    sign_up(client)
    page = client.get("/sites/").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_from(page)})
    bounced = client.get("/sites/")
    assert bounced.status_code == 302
    login_url = bounced.headers["Location"]
    next_value = login_url.partition("next=")[2]
    response = log_in_with_next(client, next_value or quote("/sites/"))
    assert response.headers["Location"] == HOME
