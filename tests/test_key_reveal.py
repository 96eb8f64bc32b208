"""A new key's show-once page survives a double submit, a reload and Back/Forward: the same
form posted twice makes one key and shows the same token; the token is held encrypted for a
few minutes only, and only the browser that created the key can open it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from datalook.extensions import db
from datalook.keys import reveals
from datalook.keys.models import KeyReveal
from datalook.models import ApiKey, utcnow
from tests.conftest import add_site, csrf_from, post_form, sign_up

TOKEN_RE = re.compile(r"dl_(?:live|test)_[A-Za-z0-9]{12}_[A-Za-z0-9]{38}")
FORMS = [
    ("/sites/{site}/quests/server-events", "/sites/{site}/quests/server-events/keys"),
    ("/sites/{site}/keys/", "/sites/{site}/keys/"),
]


def _form(client, url: str) -> dict:
    """The create-key form's hidden fields, as the browser would post them."""
    page = client.get(url).get_data(as_text=True)
    nonce = re.search(r'id="nonce" name="nonce" type="hidden" value="([^"]+)"', page)
    assert nonce, "the form carries no nonce"
    return {"csrf_token": csrf_from(page), "nonce": nonce.group(1)}


def _token(client, location: str) -> str | None:
    """The token a show-once page shows, if any."""
    found = TOKEN_RE.search(client.get(location).get_data(as_text=True))
    return found.group(0) if found else None


def _keys(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ApiKey))


@pytest.mark.parametrize(("form_url", "post_url"), FORMS)
def test_the_same_form_posted_twice_makes_one_key_and_shows_it_again(
    app, client, owner, form_url, post_url
):
    form_url, post_url = form_url.format(site=owner), post_url.format(site=owner)
    data = {**_form(client, form_url), "name": "Production server", "kind": "live"}
    first = client.post(post_url, data=data)
    second = client.post(post_url, data=data)  # a double click: the same nonce
    assert first.status_code == second.status_code == 303
    assert first.headers["Location"] == second.headers["Location"]
    assert re.fullmatch(rf"/sites/{owner}/keys/created/\d+", first.headers["Location"])
    assert _keys(app) == 1
    shown = client.get(first.headers["Location"])
    assert shown.status_code == 200 and shown.headers["Cache-Control"] == "no-store"
    token = _token(client, first.headers["Location"])
    assert token and token.startswith("dl_live_")
    # A reload (and Back then Forward) is a GET: the same token, still one key.
    assert _token(client, first.headers["Location"]) == token
    assert _keys(app) == 1


def test_a_double_submit_of_a_test_key_keeps_its_kind(app, client, owner):
    url = f"/sites/{owner}/quests/server-events"
    data = {**_form(client, url), "name": "Trying it", "kind": "test"}
    location = client.post(f"{url}/keys", data=data).headers["Location"]
    assert client.post(f"{url}/keys", data=data).headers["Location"] == location
    page = client.get(location).get_data(as_text=True)
    assert "Your new test key" in page and TOKEN_RE.search(page).group(0).startswith("dl_test_")


def test_the_token_is_never_stored_in_clear(app, client, owner):
    url = f"/sites/{owner}/keys/"
    data = {**_form(client, url), "name": "Prod"}
    location = client.post(url, data=data).headers["Location"]
    token = _token(client, location)
    assert token is not None
    secret = token.rsplit("_", 1)[1]
    with app.app_context():
        (reveal,) = db.session.scalars(select(KeyReveal)).all()
        stored = " ".join(str(v) for v in (reveal.nonce_hash, reveal.ciphertext))
        assert secret not in stored and data["nonce"] not in stored
        assert reveal.nonce_hash == reveals.nonce_hash(data["nonce"])


def test_after_its_minutes_the_page_says_the_token_cannot_be_shown_again(app, client, owner):
    url = f"/sites/{owner}/keys/"
    location = client.post(url, data={**_form(client, url), "name": "Prod"}).headers["Location"]
    with app.app_context():
        db.session.execute(update(KeyReveal).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    gone = client.get(location)
    page = gone.get_data(as_text=True)
    assert gone.status_code == 410 and not TOKEN_RE.search(page)
    assert "it cannot be shown again" in page and "Rotate “Prod”" in page
    # The next key created wipes the expired ciphertext; the late repost finds its key.
    client.post(url, data={**_form(client, url), "name": "Other"})
    with app.app_context():
        first = db.session.scalars(select(KeyReveal).order_by(KeyReveal.id)).first()
        assert first is not None and first.ciphertext is None


def test_only_the_browser_that_created_the_key_sees_its_token(app, client, owner):
    url = f"/sites/{owner}/keys/"
    location = client.post(url, data={**_form(client, url), "name": "Prod"}).headers["Location"]
    assert _token(client, location)
    # The same account in another browser: no nonce in its session, so no token.
    other = app.test_client()
    assert (
        post_form(
            other, "/login", {"email": "owner@example.com", "password": "correct horse battery"}
        ).status_code
        == 302
    )
    seen = other.get(location)
    assert seen.status_code == 410 and not TOKEN_RE.search(seen.get_data(as_text=True))
    # Another account: not found at all.
    intruder = app.test_client()
    sign_up(intruder, "intruder@example.com")
    add_site(intruder, "intruder.example.com")
    assert intruder.get(location).status_code == 404


def test_a_nonce_of_another_site_is_not_reused(app, client, owner):
    url = f"/sites/{owner}/keys/"
    data = {**_form(client, url), "name": "Prod"}
    first = client.post(url, data=data)
    other_site = add_site(client, "other.example.com")
    # The same nonce posted to another site (a crafted form): a key of its own, no error.
    other = client.post(f"/sites/{other_site}/keys/", data=data)
    assert other.status_code == 303 and other.headers["Location"] != first.headers["Location"]
    assert _token(client, other.headers["Location"]) != _token(client, first.headers["Location"])
    assert _keys(app) == 2
