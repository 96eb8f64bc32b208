"""Shared dashboards: an owner's links (create, list, revoke, CSRF) and the public page at
/share/<token> without a session: the reports, the password and its limits, noindex, and
framing only where the owner allowed it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from datalook.extensions import db
from datalook.keys import apikeys
from datalook.models import AuditEntry, SharedLink, Site
from datalook.web.share_links import token_digest
from tests.conftest import add_site, csrf_from, post_form, sign_up
from tests.factories import bearer

LINK_RE = re.compile(r"(?:https?://[^/\"<]+)?/share/([A-Za-z0-9_-]{43})")
EVENTS = [
    {"event_name": "pageview", "page_path": "/pricing", "success_user_id": "u1"},
    {
        "event_name": "success",
        "name": "paid-customer",
        "success_value": 12.5,
        "page_path": "/thanks",
        "success_user_id": "u1",
        "properties": {"plan": "pro"},
    },
]


def create_link(client, site: int, **fields) -> str:
    """Create a link through the form; return its token (read from the show-once page)."""
    data = {"name": "Investors", "password": "", "frame_ancestors": "", **fields}
    answer = post_form(client, f"/sites/{site}/shares/", data)
    assert answer.status_code == 200, answer.get_data(as_text=True)[:1000]
    assert answer.headers["Cache-Control"] == "no-store"
    return LINK_RE.search(answer.get_data(as_text=True)).group(1)


@pytest.fixture
def shared(app, client):
    """An owner's site with two events, and a second owner's site."""
    sign_up(client)
    site = add_site(client)
    with app.app_context():
        token = apikeys.create_key(db.session.get(Site, site), "Server", None).token
    for event in EVENTS:
        assert client.post("/event", json=event, headers=bearer(token)).status_code == 204
    return site


def test_a_link_shows_the_reports_read_only_without_a_session(app, client, shared):
    token = create_link(client, shared)
    with app.app_context():  # only the digest is stored
        row = db.session.scalar(select(SharedLink))
        assert row.token_hash == token_digest(token) and token not in row.token_hash
    anonymous = app.test_client()
    page = anonymous.get(f"/share/{token}?period=30d")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert re.search(r'data-figure="conversions">1<', html)
    assert "$12.50" in html and "/pricing" in html
    # No keys, live view, settings, exports, visitor ids or navigation to them.
    for absent in (
        "/keys",
        "/live",
        "/settings",
        "/privacy",
        ".csv",
        "Rename or archive",
        "u1",
        "Log in",
        f"/sites/{shared}/",
    ):
        assert absent not in html, absent
    # Date ranges work, through the link's own URL.
    assert f'href="/share/{token}?period=7d' in html
    week = anonymous.get(f"/share/{token}?from=2020-01-01&to=2020-01-07")
    assert week.status_code == 200
    assert re.search(r'data-figure="conversions">0<', week.get_data(as_text=True))
    # The property panel's form goes to the link too, and answers.
    assert f'action="/share/{token}"' in html
    plan = anonymous.get(f"/share/{token}?period=30d&prop=plan").get_data(as_text=True)
    row = re.search(r'<tr data-value="pro">.*?</tr>', plan, re.S).group(0)
    assert re.search(r'data-col="visitors">1<', row) and re.search(
        r'data-col="conversions">1<', row
    )
    # A panel's value filters the shared page through the link's URL; no Details pages.
    assert f'href="/share/{token}?period=30d&amp;prop=plan&amp;filter=' in plan
    assert "Details" not in plan and "/breakdown" not in plan and "data-panels-url" not in plan
    only = anonymous.get(f"/share/{token}?period=30d&filter=page%3D%3D/thanks")
    assert only.status_code == 200
    only_html = only.get_data(as_text=True)
    assert re.search(r'data-figure="conversions">1<', only_html)
    assert "data-filter-chip" in only_html and f"/sites/{shared}/" not in only_html
    # The add-a-filter form answers on the link too (a redirect to the filtered page).
    added = anonymous.get(f"/share/{token}?period=30d&fdim=page&fop=%3D%3D&fval=/pricing")
    assert added.status_code == 302 and added.location.startswith(f"/share/{token}?")
    assert "filter=" in added.location
    # A bad range goes back to the default, never a 500.
    assert anonymous.get(f"/share/{token}?from=nonsense").status_code == 302
    # noindex twice over.
    assert page.headers["X-Robots-Tag"] == "noindex, nofollow"
    assert '<meta name="robots" content="noindex, nofollow">' in html
    # The link reads its own site only: the session-less browser gets no report JSON.
    assert anonymous.get(f"/sites/{shared}/stats.json").status_code == 401


def test_framing_only_where_the_owner_allowed_it(app, client, shared):
    closed = create_link(client, shared, name="Screen")
    embeddable = create_link(
        client,
        shared,
        name="Intranet",
        frame_ancestors="https://intranet.example.com, https://*.example.org:8443",
    )
    anonymous = app.test_client()
    answer = anonymous.get(f"/share/{embeddable}")
    csp = answer.headers["Content-Security-Policy"]
    assert "frame-ancestors https://intranet.example.com https://*.example.org:8443;" in csp
    assert "X-Frame-Options" not in answer.headers
    not_allowed = anonymous.get(f"/share/{closed}")
    assert "frame-ancestors 'none'" in not_allowed.headers["Content-Security-Policy"]
    assert not_allowed.headers["X-Frame-Options"] == "DENY"
    # Every other page keeps DENY.
    for path in ("/", "/login", f"/sites/{shared}/", f"/sites/{shared}/shares/", "/docs/stats-api"):
        got = client.get(path)
        assert got.headers["X-Frame-Options"] == "DENY", path
        assert "frame-ancestors 'none'" in got.headers["Content-Security-Policy"], path


@pytest.mark.parametrize(
    "origins",
    [
        "intranet.example.com",
        "https://a.example.com/path",
        "https://a.example.com; script-src *",
        "'self'",
        "javascript:alert(1)",
        "https://" + "a" * 64 + ".com",
        " ".join(f"https://s{n}.example.com" for n in range(11)),
    ],
)
def test_a_bad_frame_ancestors_list_is_refused_on_the_form(client, shared, origins):
    answer = post_form(
        client, f"/sites/{shared}/shares/", {"name": "X", "frame_ancestors": origins}
    )
    assert answer.status_code == 400
    assert 'id="frame_ancestors-error"' in answer.get_data(as_text=True)
    assert "/share/" not in answer.get_data(as_text=True)


def test_the_password_right_wrong_and_limited(app, client, shared):
    token = create_link(client, shared, password="open sesame please")
    with app.app_context():
        stored = db.session.scalar(select(SharedLink.password_hash))
        assert stored.startswith("$2") and "open sesame" not in stored  # bcrypt
    visitor = app.test_client()
    form = visitor.get(f"/share/{token}")
    assert form.status_code == 200 and 'data-figure="conversions"' not in form.get_data(
        as_text=True
    )
    assert form.headers["X-Robots-Tag"] == "noindex, nofollow"
    csrf = csrf_from(form.get_data(as_text=True))
    # Without the CSRF token: refused.
    assert (
        visitor.post(f"/share/{token}", data={"password": "open sesame please"}).status_code == 400
    )
    wrong = visitor.post(f"/share/{token}", data={"password": "guess", "csrf_token": csrf})
    assert wrong.status_code == 400 and "not right" in wrong.get_data(as_text=True)
    right = visitor.post(
        f"/share/{token}", data={"password": "open sesame please", "csrf_token": csrf}
    )
    assert right.status_code == 302
    assert 'data-figure="conversions">1<' in visitor.get(f"/share/{token}").get_data(as_text=True)
    # The cookie opens that link only.
    other = create_link(client, shared, name="Other", password="another secret")
    assert "data-figure" not in visitor.get(f"/share/{other}").get_data(as_text=True)


def test_password_guesses_are_limited_per_link_and_per_address(app, client, shared):
    token = create_link(client, shared, password="open sesame please")

    def guess(password: str, address: str):
        browser = app.test_client()
        page = browser.get(f"/share/{token}", environ_base={"REMOTE_ADDR": address})
        data = {"password": password, "csrf_token": csrf_from(page.get_data(as_text=True))}
        return browser.post(f"/share/{token}", data=data, environ_base={"REMOTE_ADDR": address})

    # Per address: the 11th attempt within a minute is refused before the password is checked.
    codes = [guess("wrong guess", "10.0.0.1").status_code for _ in range(11)]
    assert codes == [400] * 10 + [429]
    # Per link, from any address: 10 wrong ones, then even the right password waits.
    limited = guess("open sesame please", "10.0.0.2")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert "Too many wrong passwords" in limited.get_data(as_text=True)


def test_revoking_a_link_makes_it_404_and_is_audited(app, client, shared):
    token = create_link(client, shared)
    anonymous = app.test_client()
    assert anonymous.get(f"/share/{token}").status_code == 200
    with app.app_context():
        link_id = db.session.scalar(select(SharedLink.id))
    # Revoking needs the CSRF token.
    assert client.post(f"/sites/{shared}/shares/{link_id}/revoke").status_code == 400
    assert anonymous.get(f"/share/{token}").status_code == 200
    page = client.get(f"/sites/{shared}/shares/").get_data(as_text=True)
    assert token not in page  # the list never shows a token
    done = client.post(
        f"/sites/{shared}/shares/{link_id}/revoke", data={"csrf_token": csrf_from(page)}
    )
    assert done.status_code == 302
    assert anonymous.get(f"/share/{token}").status_code == 404
    assert "revoked" in client.get(f"/sites/{shared}/shares/").get_data(as_text=True)
    with app.app_context():
        entries = select(AuditEntry).where(AuditEntry.action.like("share%")).order_by(AuditEntry.id)
        actions = [e.action for e in db.session.scalars(entries)]
        assert actions == ["share_created", "share_revoked"]
    for bad in ("x", "A" * 43, token[:-1] + ("A" if token[-1] != "A" else "B")):
        assert anonymous.get(f"/share/{bad}").status_code == 404


def test_only_the_sites_owner_manages_its_links(app, client, shared):
    create_link(client, shared)
    stranger = app.test_client()
    sign_up(stranger, "stranger@example.com")
    assert stranger.get(f"/sites/{shared}/shares/").status_code == 404
    page = stranger.get("/sites/").get_data(as_text=True)
    with app.app_context():
        link_id = db.session.scalar(select(SharedLink.id))
    answer = stranger.post(
        f"/sites/{shared}/shares/{link_id}/revoke", data={"csrf_token": csrf_from(page)}
    )
    assert answer.status_code == 404
    # Without the CSRF token the create form creates nothing.
    assert client.post(f"/sites/{shared}/shares/", data={"name": "No token"}).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(SharedLink.revoked_at)) is None
        assert len(db.session.scalars(select(SharedLink)).all()) == 1
