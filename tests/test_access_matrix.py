"""Every route × every role: allowed, 404 (not a member), 403 (role too weak) or the log-in.

ROUTES names the weakest role each (method, rule) needs. A route added without an entry
fails test_every_route_has_an_entry, so nobody can add a page or a JSON route whose access
was not decided. Non-members get 404 (they never learn that a site exists); members whose
role is too weak get 403 with the role that is needed; anonymous requests go to the log-in
page (JSON paths: 401).

CSRF is off in this module's app (its own tests check it on every form): a POST reaches
its view, and "allowed" means it was not refused for access (its empty form may be a 400).
Each POST gets a fresh site, so that what one role's POST changes cannot change another's.
"""

from __future__ import annotations

import itertools
import re
import secrets
import shutil
from datetime import timedelta

import pytest

from datalook.accounts.invitations import VALID_FOR, digest
from datalook.accounts.members import remove_member
from datalook.analytics.funnels import repository
from datalook.analytics.funnels.definition import parse_definition
from datalook.extensions import db
from datalook.keys import apikeys
from datalook.keys.models import KeyReveal
from datalook.models import (
    ROLE_ADMIN,
    ROLE_OWNER,
    ROLE_VIEWER,
    Invitation,
    SharedLink,
    Site,
    SiteMember,
    SuccessRule,
    User,
    utcnow,
)
from datalook.web.share_links import token_digest
from tests.conftest import _make_app

PUBLIC, LOGIN, READ, ADMIN, OWNER = "public", "login", ROLE_VIEWER, ROLE_ADMIN, ROLE_OWNER
S = "/sites/<int:site_id>"

#: (method, rule) -> the weakest role (or public / login) it needs.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/"): PUBLIC,
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/signup"): PUBLIC,
    ("POST", "/signup"): PUBLIC,
    ("POST", "/logout"): LOGIN,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs/server-events"): PUBLIC,
    ("GET", "/docs/browser-sdk"): PUBLIC,
    ("GET", "/docs/reports"): PUBLIC,
    ("GET", "/static/<path:filename>"): PUBLIC,
    ("GET", "/js/datalook.js"): PUBLIC,
    ("GET", "/docs/stats-api"): PUBLIC,
    ("GET", "/share/<token>"): PUBLIC,
    ("POST", "/share/<token>"): PUBLIC,
    ("GET", "/invitations/<token>"): PUBLIC,
    ("POST", "/invitations/<token>"): LOGIN,
    ("GET", "/sites/"): LOGIN,
    ("POST", "/sites/"): LOGIN,
    ("GET", f"{S}/delete"): OWNER,
    ("POST", f"{S}/delete"): OWNER,
    # The dashboard and its reports.
    ("GET", f"{S}/"): READ,
    ("GET", f"{S}/settings"): ADMIN,
    ("POST", f"{S}/settings"): ADMIN,
    ("GET", f"{S}/rules/edit"): ADMIN,
    ("POST", f"{S}/rules/edit"): ADMIN,
    ("GET", f"{S}/stats.json"): READ,
    ("GET", f"{S}/breakdown.json"): READ,
    ("GET", f"{S}/funnel.json"): READ,
    ("GET", f"{S}/funnels/<int:funnel_id>.json"): READ,
    ("GET", f"{S}/journeys.json"): READ,
    ("GET", f"{S}/journeys/next.json"): READ,
    ("GET", f"{S}/attribution.json"): READ,
    # The dashboard's panels read after a large range's page, and a panel's full list.
    ("GET", f"{S}/panels"): READ,
    ("GET", f"{S}/breakdown"): READ,
    ("GET", f"{S}/breakdown.csv"): READ,
    ("GET", f"{S}/live.json"): READ,
    ("GET", f"{S}/reports/totals.csv"): READ,
    ("GET", f"{S}/reports/rules.csv"): READ,
    ("GET", f"{S}/reports/series.csv"): READ,
    ("GET", f"{S}/reports/pages.csv"): READ,
    ("GET", f"{S}/reports/breakdown.csv"): READ,
    # Funnels and journeys.
    ("GET", f"{S}/funnels/"): READ,
    ("POST", f"{S}/funnels/"): ADMIN,
    ("GET", f"{S}/funnels/new"): ADMIN,
    ("GET", f"{S}/funnels/<int:funnel_id>"): READ,
    ("GET", f"{S}/funnels/<int:funnel_id>/edit"): ADMIN,
    ("POST", f"{S}/funnels/<int:funnel_id>/edit"): ADMIN,
    ("POST", f"{S}/funnels/<int:funnel_id>/delete"): ADMIN,
    ("GET", f"{S}/journeys/"): READ,
    # Who converted or dropped off, and one visitor's journey: visitor ids, so admins only.
    ("GET", f"{S}/funnels/<int:funnel_id>/visitors"): ADMIN,
    ("GET", f"{S}/funnels/<int:funnel_id>/visitors.csv"): ADMIN,
    ("GET", f"{S}/journeys/visitor"): ADMIN,
    # Quests.
    ("GET", f"{S}/quests/"): READ,
    ("GET", f"{S}/quests/funnel"): READ,
    ("GET", f"{S}/quests/server-events"): ADMIN,
    ("POST", f"{S}/quests/server-events/keys"): ADMIN,
    ("GET", f"{S}/quests/browser-sdk/"): ADMIN,
    ("GET", f"{S}/quests/browser-sdk/status.json"): ADMIN,
    ("POST", f"{S}/quests/browser-sdk/origins"): ADMIN,
    ("POST", f"{S}/quests/browser-sdk/visitor-ids"): ADMIN,
    ("POST", f"{S}/quests/browser-sdk/origins/remove"): ADMIN,
    ("POST", f"{S}/quests/browser-sdk/do-not-track"): ADMIN,
    ("POST", f"{S}/quests/browser-sdk/site-key"): ADMIN,
    # API keys.
    ("GET", f"{S}/keys/"): ADMIN,
    ("POST", f"{S}/keys/"): ADMIN,
    # A created key's show-once page (each person's own; past its minutes it says so, 410).
    ("GET", f"{S}/keys/created/<int:reveal_id>"): ADMIN,
    ("GET", f"{S}/keys/<key_id>/revoke"): ADMIN,
    ("POST", f"{S}/keys/<key_id>/revoke"): ADMIN,
    ("GET", f"{S}/keys/<key_id>/rotate"): ADMIN,
    ("POST", f"{S}/keys/<key_id>/rotate"): ADMIN,
    ("GET", f"{S}/keys/<key_id>/status.json"): ADMIN,
    # The live view, test events, erasure.
    ("GET", f"{S}/live"): READ,
    ("POST", f"{S}/live/clear-test"): ADMIN,
    ("GET", f"{S}/privacy"): OWNER,
    ("POST", f"{S}/privacy/erase"): OWNER,
    # Members, invitations, the audit log.
    ("GET", f"{S}/members"): READ,
    ("POST", f"{S}/members/leave"): READ,
    ("POST", f"{S}/members/invite"): OWNER,
    ("POST", f"{S}/members/<int:user_id>/role"): OWNER,
    ("POST", f"{S}/members/<int:user_id>/remove"): OWNER,
    ("POST", f"{S}/invitations/<int:invitation_id>/resend"): OWNER,
    ("POST", f"{S}/invitations/<int:invitation_id>/revoke"): OWNER,
    ("GET", f"{S}/shares/"): OWNER,
    ("POST", f"{S}/shares/"): OWNER,
    ("POST", f"{S}/shares/<int:link_id>/revoke"): OWNER,
    ("GET", f"{S}/audit"): OWNER,
    ("GET", f"{S}/audit.csv"): OWNER,
}

#: Query strings that let an allowed request pass its own checks (an existing rule name).
QUERIES = {f"{S}/rules/edit": "?name=paid"}

ROLES = ("anonymous", "outsider", ROLE_VIEWER, ROLE_ADMIN, ROLE_OWNER)
RANK = {ROLE_VIEWER: 1, ROLE_ADMIN: 2, ROLE_OWNER: 3}
_serial = itertools.count(1)


def _pairs(app) -> set[tuple[str, str]]:
    """Every (method, rule) the app serves."""
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }


def expected(need: str, role: str) -> str:
    """What `role` gets from a route that needs `need`."""
    if need == PUBLIC:
        return "allowed"
    if role == "anonymous":
        return "login"
    if need == LOGIN:
        return "allowed"
    if role == "outsider":
        return "404"
    return "allowed" if RANK[role] >= RANK[need] else "403"


@pytest.fixture(scope="module")
def world(tmp_path_factory, migrated_db):
    """One app (CSRF off) with an owner, an admin, a viewer and an outsider."""
    instance = tmp_path_factory.mktemp("matrix")
    shutil.copy(migrated_db, instance / "datalook.db")
    app = _make_app(instance, WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
    with app.app_context():
        users = {}
        for role in ("owner", "admin", "viewer", "outsider"):
            user = User(email=f"{role}@matrix.example")
            user.password_hash = "x"  # never logs in by password: the session is set below
            db.session.add(user)
            users[role] = user
        db.session.commit()
        ids = {role: user.id for role, user in users.items()}
    yield app, ids
    with app.app_context():
        db.engine.dispose()


def make_site(app, ids: dict, invitee: str | None, share: bool = False) -> dict:
    """A fresh site with the three members, a success rule, a key, a funnel and an
    invitation (for `invitee`'s address), a shared link: the values of the URL's variables
    (`token` is the shared link's with `share`, else the invitation's)."""
    with app.app_context():
        site = Site(owner_id=ids["owner"], domain=f"m{next(_serial)}.example.com")
        db.session.add(site)
        for role in (ROLE_OWNER, ROLE_ADMIN, ROLE_VIEWER):
            db.session.add(SiteMember(site=site, user_id=ids[role], role=role))
        db.session.flush()
        db.session.add(SuccessRule(site_id=site.id, name="paid", first_seen_at=utcnow()))
        token = f"dli_matrix{next(_serial)}"
        invitation = Invitation(
            site_id=site.id,
            email=f"{invitee or 'nobody'}@matrix.example",
            role=ROLE_VIEWER,
            token_hash=digest(token),
            expires_at=utcnow() + VALID_FOR,
        )
        db.session.add(invitation)
        share_token = secrets.token_urlsafe(32)
        link = SharedLink(site_id=site.id, token_hash=token_digest(share_token), name="Board")
        db.session.add(link)
        db.session.commit()
        site_id, invitation_id, link_id = site.id, invitation.id, link.id
        key = apikeys.create_key(site, "Prod", None).key
        key_id = key.key_id
        # Each member's own (spent) show-once page of that key: a reveal is its creator's.
        reveal_ids = {}
        for role in (ROLE_OWNER, ROLE_ADMIN, ROLE_VIEWER):
            reveal = KeyReveal(
                nonce_hash=f"{next(_serial):064d}",
                site_id=site_id,
                user_id=ids[role],
                api_key_id=key.id,
                ciphertext=None,
                expires_at=utcnow() - timedelta(minutes=1),
            )
            db.session.add(reveal)
            db.session.flush()
            reveal_ids[role] = reveal.id
        db.session.commit()
        steps = [{"event_name": "pageview"}, {"event_name": "pageview"}]
        definition = parse_definition(steps, "24h", "ordered")
        funnel_id = repository.save(db.session, site_id, "F", definition).id
    return {
        "site_id": site_id,
        "key_id": key_id,
        "funnel_id": funnel_id,
        "invitation_id": invitation_id,
        "user_id": ids["viewer"],
        "token": share_token if share else token,
        "link_id": link_id,
        "filename": "app.css",
        "reveal_ids": reveal_ids,
    }


def path_of(app, rule: str, values: dict, role: str) -> str:
    """The URL of `rule` for the site in `values`, as `role` opens it."""
    adapter_rule = next(r for r in app.url_map.iter_rules() if r.rule == rule)
    # A show-once page is its creator's: each role opens its own (others': the owner's).
    values = {**values, "reveal_id": values["reveal_ids"].get(role, values["reveal_ids"]["owner"])}
    path = adapter_rule.build(
        {k: v for k, v in values.items() if k in adapter_rule.arguments}, append_unknown=False
    )[1]
    return path + QUERIES.get(rule, "")


def client_as(app, ids: dict, role: str):
    """A test client logged in as the role's user (anonymous: not logged in)."""
    client = app.test_client()
    if role != "anonymous":
        user = "outsider" if role == "outsider" else role
        with client.session_transaction() as session:
            session["_user_id"] = str(ids[user])
            session["_fresh"] = True
    return client


def outcome(response, path: str) -> str:
    """allowed, 404, 403 or login, as the response says (the log-in page with `next`: a
    page that needs a user; log-out's own redirect to the log-in page is not that)."""
    location = response.headers.get("Location", "")
    if response.status_code in (301, 302, 303) and re.match(
        r"(https?://[^/]+)?/login\?next=", location
    ):
        return "login"
    if response.status_code == 401 and path.endswith(".json"):
        return "login"
    if response.status_code in (401, 403, 404) or response.status_code >= 500:
        return str(response.status_code)
    return "allowed"


def test_every_route_has_an_entry(world):
    app, _ = world
    served = _pairs(app)
    missing = sorted(served - ROUTES.keys())
    assert not missing, f"routes without an entry in ROUTES (decide their access): {missing}"
    assert not sorted(ROUTES.keys() - served), "ROUTES names routes the app no longer has"


@pytest.fixture(scope="module")
def shared_site(world):
    """One site for the GET requests (they change nothing)."""
    app, ids = world
    return make_site(app, ids, None)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "rule"), sorted(ROUTES), ids=lambda v: str(v))
def test_route_and_role(world, shared_site, method, rule, role):
    app, ids = world
    need = ROUTES[(method, rule)]
    # A POST gets its own site; an invitation's POST is for the role's own address.
    invitee = None if role == "anonymous" else role
    share = rule.startswith("/share/")
    if method == "GET" and not share:
        values = shared_site
    else:
        values = make_site(app, ids, invitee, share)
    path = path_of(app, rule, values, role)
    response = client_as(app, ids, role).open(path, method=method)
    body = response.get_data(as_text=True)
    response.close()
    want = expected(need, role)
    got = outcome(response, path)
    assert got == want, f"{method} {path} as {role}: {response.status_code}, expected {want}"
    if want == "403":
        if path.endswith(".json"):
            error = response.get_json()["error"]
            assert error["code"] == "role_required" and error["required_role"] == need
        else:
            assert f"needs the {need} role" in body


def test_a_removed_member_is_refused_every_page_and_json_route_at_once(world):
    """Every GET route a viewer opens, pages and JSON alike: allowed before the removal, 404
    on the same session's very next request after it (roles are read per request)."""
    app, ids = world
    values = make_site(app, ids, None)
    client = client_as(app, ids, ROLE_VIEWER)
    paths = [
        path_of(app, rule, values, ROLE_VIEWER)
        for (method, rule), need in sorted(ROUTES.items())
        if method == "GET" and need == READ and rule.startswith(S)
    ]
    assert any(p.endswith(".json") for p in paths) and any(p.endswith("/live.json") for p in paths)
    for path in paths:
        assert outcome(client.get(path), path) == "allowed", path
    with app.app_context():
        site = db.session.get(Site, values["site_id"])
        remove_member(site, ids[ROLE_VIEWER], "cli:test")
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        if path.endswith(".json"):
            assert response.get_json()["error"]["code"] == "not_found", path
