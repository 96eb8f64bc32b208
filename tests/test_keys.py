"""API keys: token format, the 10-key cap, revocation, rotation, show-once, and secrecy."""

from __future__ import annotations

import logging
import multiprocessing
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from datalook.extensions import db
from datalook.keys import apikeys, tokens
from datalook.models import ApiKey, Site, User, utcnow
from tests.conftest import _make_app, csrf_from, post_form

TOKEN_RE = re.compile(r"dl_live_[A-Za-z0-9]{12}_[A-Za-z0-9]{38}")


def make_site(app, domain="example.com") -> int:
    """Create a user and a site directly; return the site id."""
    with app.app_context():
        user = User(email=f"o@{domain}")
        user.set_password("correct horse battery")
        site = Site(owner=user, domain=domain)
        db.session.add_all([user, site])
        db.session.commit()
        return site.id


def create(app, site_id, name="Prod"):
    """Create a key through the service; return (key_id, token)."""
    with app.app_context():
        created = apikeys.create_key(db.session.get(Site, site_id), name, None)
        return created.key.key_id, created.token


def auth(app, header, now=None):
    """Authenticate a header value the way /event does."""
    with app.app_context():
        connection = db.engine.raw_connection()
        try:
            return apikeys.authenticate(connection, db.engine.dialect, header, now or utcnow())
        finally:
            connection.close()


# --- token format ----------------------------------------------------------------------------


def test_generated_tokens_have_the_documented_form():
    new = tokens.generate()
    assert TOKEN_RE.fullmatch(new.token)
    assert new.secret_hash != new.token and len(new.secret_hash) == 64
    parsed = tokens.parse(new.token)
    assert parsed.key_id == new.key_id
    assert tokens.secret_matches(parsed.secret, new.secret_hash)


VALID = tokens.generate().token


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "dl_live_",
        "dl_test_" + VALID[8:],
        VALID[:-1],
        VALID + "x",
        VALID[:-1] + ("A" if VALID[-1] != "A" else "B"),  # checksum mismatch
        VALID.replace("_", "-"),
        VALID[:12] + "_" + VALID[13:],  # an underscore inside the key id
        VALID.upper(),
        "dl_live_" + "a" * 12 + "_" + "b" * 38,  # right shape, wrong checksum
        VALID[:10] + " " + VALID[11:],
        VALID + "\x00",
        "é" * 59,
    ],
    # Named cases: the token is random, and node ids must be the same in every process.
    ids=[
        "empty",
        "prefix-only",
        "test-prefix-on-a-live-body",
        "one-short",
        "one-long",
        "checksum-mismatch",
        "dashes",
        "underscore-in-key-id",
        "upper-case",
        "right-shape-wrong-checksum",
        "space-inside",
        "nul-after",
        "non-ascii",
    ],
)
def test_malformed_tokens_are_refused_before_any_lookup(bad):
    with pytest.raises(tokens.MalformedToken):
        tokens.parse(bad)


@pytest.mark.parametrize(
    "wrapped", [f" {VALID}", f"{VALID}\n", f"\t{VALID} \r\n"], ids=["space", "newline", "tab-crlf"]
)
def test_surrounding_whitespace_is_forgiven(wrapped):
    assert tokens.parse(wrapped).key_id == tokens.parse(VALID).key_id


@pytest.mark.parametrize(
    ("header", "code"),
    [
        (None, "missing_token"),
        ("", "missing_token"),
        ("Basic dXNlcjpwdw==", "malformed_token"),
        ("Bearer", "malformed_token"),
        ("Bearer not-a-token", "malformed_token"),
        (f"Bearer {tokens.generate().token}", "invalid_token"),
    ],
    ids=["none", "empty", "basic", "bearer-alone", "not-a-token", "unknown-key"],
)
def test_authentication_failures_say_why(app, header, code):
    with pytest.raises(apikeys.AuthFailure) as failure:
        auth(app, header)
    assert failure.value.code == code


def test_wrong_secret_looks_like_an_unknown_key(app):
    site_id = make_site(app)
    key_id, token = create(app, site_id)
    other = tokens.generate(key_id=key_id).token  # same key_id, another (valid-form) secret
    # The right token first: what authentication keeps of it must not let the other in.
    assert auth(app, f"Bearer {token}").key_id == key_id
    for _ in range(2):
        with pytest.raises(apikeys.AuthFailure) as failure:
            auth(app, f"Bearer {other}")
        assert failure.value.code == "invalid_token"
    assert auth(app, f"bearer {token}\n").key_id == key_id


# --- cap, revoke, rotate --------------------------------------------------------------------


def test_eleventh_active_key_is_refused(app):
    site_id = make_site(app)
    for n in range(10):
        create(app, site_id, f"key {n}")
    with pytest.raises(apikeys.KeyRefused, match="Revoke one first"):
        create(app, site_id, "one too many")
    with app.app_context():
        key = db.session.scalar(select(ApiKey).limit(1))
        apikeys.revoke_key(key)
    create(app, site_id, "fits again")


def test_duplicate_active_name_is_refused_but_revoked_name_is_reusable(app):
    site_id = make_site(app)
    key_id, _ = create(app, site_id, "Production server")
    with pytest.raises(apikeys.KeyRefused, match="already exists"):
        create(app, site_id, "  Production server ")
    with app.app_context():
        apikeys.revoke_key(db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id)))
    create(app, site_id, "Production server")


def racing_context():
    """Processes forked from a server that has imported the app once: each racer is still
    its own interpreter with its own app and connections, but starts without importing
    everything again as a spawned one would (about 2 s of CPU each)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["tests.conftest"])
    return context


def _race_create(instance: str, site_id: int, name: str, start, results) -> None:
    """Create one key in a separate process, after the start signal."""
    app = _make_app(instance)
    start.wait()
    with app.app_context():
        try:
            apikeys.create_key(db.session.get(Site, site_id), name, None)
            results.put("created")
        except apikeys.KeyRefused:
            results.put("refused")


def test_racing_creations_at_nine_keys_never_exceed_the_cap(app):
    site_id = make_site(app)
    for n in range(9):
        create(app, site_id, f"key {n}")
    context = racing_context()
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(
            target=_race_create, args=(app.instance_path, site_id, f"racer {i}", start, results)
        )
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = sorted(results.get(timeout=60) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["created", "refused", "refused", "refused"]
    with app.app_context():
        active = db.session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.active_at(utcnow()))
        )
    assert active == 10


def test_revocation_is_seen_by_another_process_on_the_next_request(app):
    site_id = make_site(app)
    key_id, token = create(app, site_id)
    other = _make_app(app.instance_path)  # a second "worker" with its own engine and pool
    assert auth(other, f"Bearer {token}").key_id == key_id
    with app.app_context():
        apikeys.revoke_key(db.session.scalar(select(ApiKey)))
    with pytest.raises(apikeys.AuthFailure) as failure:
        auth(other, f"Bearer {token}")
    assert failure.value.code == "revoked_token"


@pytest.mark.parametrize(
    ("grace", "still_works_at", "refused_at"),
    [
        ("now", None, timedelta(0)),
        ("1h", timedelta(minutes=59), timedelta(hours=1)),
        ("24h", timedelta(hours=23, minutes=59), timedelta(hours=24)),
        ("7d", timedelta(days=6, hours=23), timedelta(days=7)),
    ],
)
def test_rotation_keeps_the_old_key_for_its_grace_period(app, grace, still_works_at, refused_at):
    site_id = make_site(app)
    _, old_token = create(app, site_id, "Prod")
    start = utcnow()
    with app.app_context():
        old = db.session.scalar(select(ApiKey))
        new = apikeys.rotate_key(old, grace, None, now=start)
        new_token, new_name = new.token, new.key.name
    assert new_name == "Prod"
    assert auth(app, f"Bearer {new_token}", start).site_id == site_id
    if still_works_at is not None:
        assert auth(app, f"Bearer {old_token}", start + still_works_at)
    with pytest.raises(apikeys.AuthFailure) as failure:
        auth(app, f"Bearer {old_token}", start + refused_at)
    assert failure.value.code == "revoked_token"


def test_key_in_grace_period_counts_toward_the_cap(app):
    site_id = make_site(app)
    for n in range(9):
        create(app, site_id, f"key {n}")
    now = utcnow()
    with app.app_context():
        first = db.session.scalar(select(ApiKey).order_by(ApiKey.id).limit(1))
        apikeys.rotate_key(first, "1h", None, now=now)  # 10 active: 8 + old (grace) + new
    with pytest.raises(apikeys.KeyRefused):
        create(app, site_id, "eleventh")
    with app.app_context():
        later = now + timedelta(hours=1, seconds=1)
        apikeys.create_key(db.session.get(Site, site_id), "after the grace", None, now=later)


# --- the pages --------------------------------------------------------------------------------


def test_show_once_then_never_again(app, client, owner):
    quest = client.get(f"/sites/{owner}/quests/server-events").get_data(as_text=True)
    assert "Create key" in quest
    posted = client.post(
        f"/sites/{owner}/quests/server-events/keys",
        data={"name": "Production server", "csrf_token": csrf_from(quest)},
    )
    assert posted.status_code == 303  # Post/Redirect/Get: the token is on a GET page
    assert TOKEN_RE.search(posted.get_data(as_text=True)) is None
    response = client.get(posted.headers["Location"])
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    token = TOKEN_RE.search(page).group(0)
    assert "will not be shown again" in page
    assert "Waiting for your first event from this key" in page
    assert page.count(token) >= 2  # the token box and the pre-filled snippets
    for url in (
        f"/sites/{owner}/quests/server-events",
        f"/sites/{owner}/keys/",
        f"/sites/{owner}/",
    ):
        again = client.get(url).get_data(as_text=True)
        assert token not in again and tokens.parse(token).secret not in again
        assert not TOKEN_RE.search(again)
    keys_page = client.get(f"/sites/{owner}/keys/").get_data(as_text=True)
    assert f"dl_live_{tokens.parse(token).key_id}_••••" in keys_page
    assert "owner@example.com" in keys_page  # created by


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "Give the key a name"), ("   ", "Give the key a name"), ("x" * 65, "1 to 64 characters")],
)
def test_key_name_is_validated(app, client, owner, name, message):
    response = post_form(
        client,
        f"/sites/{owner}/quests/server-events/keys",
        {"name": name},
        f"/sites/{owner}/quests/server-events",
    )
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 0


def test_eleventh_key_in_the_ui_says_to_revoke_one(app, client, owner):
    for n in range(10):
        create(app, owner, f"k{n}")
    response = post_form(client, f"/sites/{owner}/keys/", {"name": "eleven"})
    assert response.status_code == 400
    assert "Revoke one first" in response.get_data(as_text=True)


def test_revoke_needs_confirmation_then_takes_effect(app, client, owner):
    key_id, token = create(app, owner)
    confirm = client.get(f"/sites/{owner}/keys/{key_id}/revoke")
    assert "Revoke “Prod”?" in confirm.get_data(as_text=True)
    assert auth(app, f"Bearer {token}")  # still fine: nothing happened on GET
    done = client.post(
        f"/sites/{owner}/keys/{key_id}/revoke",
        data={"csrf_token": csrf_from(confirm.get_data(as_text=True))},
    )
    assert done.status_code == 302
    with pytest.raises(apikeys.AuthFailure):
        auth(app, f"Bearer {token}")
    assert "revoked" in client.get(f"/sites/{owner}/keys/").get_data(as_text=True)


def test_rotate_in_the_ui_shows_the_new_token_once(app, client, owner):
    key_id, old_token = create(app, owner)
    form = client.get(f"/sites/{owner}/keys/{key_id}/rotate").get_data(as_text=True)
    nonce = re.search(r'name="nonce" type="hidden" value="([^"]+)"', form).group(1)
    data = {"expire_old_in": "24h", "csrf_token": csrf_from(form), "nonce": nonce}
    posted = client.post(f"/sites/{owner}/keys/{key_id}/rotate", data=data)
    assert posted.status_code == 303  # Post/Redirect/Get, as a new key's
    # The same form posted again (a double click) shows the same new key: one rotation.
    again = client.post(f"/sites/{owner}/keys/{key_id}/rotate", data=data)
    assert again.status_code == 303 and again.headers["Location"] == posted.headers["Location"]
    response = client.get(posted.headers["Location"])
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert "Your rotated API key" in response.get_data(as_text=True)
    new_token = TOKEN_RE.search(response.get_data(as_text=True)).group(0)
    assert new_token != old_token
    assert auth(app, f"Bearer {old_token}") and auth(app, f"Bearer {new_token}")
    listing = client.get(f"/sites/{owner}/keys/").get_data(as_text=True)
    assert "expires " in listing

    # The page says when the old key stops; the list links the old key to its successor.
    page = response.get_data(as_text=True)
    new_key_id = new_token.split("_")[2]
    with app.app_context():
        old = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        assert old.replaced_by.key_id == new_key_id
        until = f"{old.expires_at:%Y-%m-%d %H:%M} UTC"
    assert f"keeps working until <strong>{until}</strong>" in page
    assert f'replaced by <a href="#key-{new_key_id}">dl_live_{new_key_id}_••••</a>' in listing
    assert f'id="key-{new_key_id}"' in listing


def test_rotate_now_says_the_old_key_stopped(app, client, owner):
    key_id, _ = create(app, owner)
    form = client.get(f"/sites/{owner}/keys/{key_id}/rotate").get_data(as_text=True)
    # The form says what each choice means: the old key's last moment.
    later = (utcnow() + timedelta(hours=24)).strftime("%Y-%m-%d")
    assert re.search(rf"In 24 hours <span class=\"muted\">\(until {later} \d\d:\d\d UTC\)", form)
    response = client.post(
        f"/sites/{owner}/keys/{key_id}/rotate",
        data={"expire_old_in": "now", "csrf_token": csrf_from(form)},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "stopped working just now" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("form_url", "post_url"),
    [
        ("/sites/{site}/quests/server-events", "/sites/{site}/quests/server-events/keys"),
        ("/sites/{site}/keys/", "/sites/{site}/keys/"),
    ],
)
def test_posting_a_created_key_again_offers_rotation(app, client, owner, form_url, post_url):
    form_url, post_url = form_url.format(site=owner), post_url.format(site=owner)
    first = post_form(client, post_url, {"name": "Production server"}, form_url)
    assert first.status_code == 303
    token = TOKEN_RE.search(client.get(first.headers["Location"]).get_data(as_text=True)).group(0)

    # Another form (a new nonce) with the same name: the key exists, its token is not shown.
    again = post_form(client, post_url, {"name": "Production server"}, form_url)
    page = again.get_data(as_text=True)
    assert again.status_code == 409
    assert "The key “Production server” already exists" in page
    assert "it cannot be shown again" in page
    key_id = token.split("_")[2]
    assert f'href="/sites/{owner}/keys/{key_id}/rotate">Rotate “Production server”</a>' in page
    assert token not in page and token.split("_")[-1] not in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 1


def test_the_quest_suggests_a_key_name_until_it_is_taken(app, client, owner):
    quest = f"/sites/{owner}/quests/server-events"
    assert 'value="Production server"' in client.get(quest).get_data(as_text=True)
    create(app, owner, "Production server")
    assert 'value="Production server"' not in client.get(quest).get_data(as_text=True)


def test_status_endpoint_reports_the_first_event(app, client, owner):
    key_id, token = create(app, owner)
    status = client.get(f"/sites/{owner}/keys/{key_id}/status.json").get_json()
    assert status == {"received": False, "quest_done": False, "event": None, "refused": None}
    sent = client.post(
        "/event",
        json={"event_name": "success", "name": "paid-customer", "page_path": "/checkout/success"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert sent.status_code == 204
    status = client.get(f"/sites/{owner}/keys/{key_id}/status.json").get_json()
    assert status["received"] and status["quest_done"]
    assert status["event"]["name"] == "paid-customer"
    assert status["event"]["page_path"] == "/checkout/success"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", status["event"]["time"])
    assert "Done" in client.get(f"/sites/{owner}/quests/").get_data(as_text=True)


# --- secrecy ----------------------------------------------------------------------------------


def test_secret_is_absent_from_database_file_and_logs(app, client, owner, caplog):
    caplog.set_level(logging.DEBUG)
    _, token = create(app, owner)
    secret = tokens.parse(token).secret
    for body in ({"event_name": "click", "page_path": "/"}, {"bad": 1}):
        client.post("/event", json=body, headers={"Authorization": f"Bearer {token}"})
    client.post("/event", json={}, headers={"Authorization": f"Bearer {token[:-1]}X"})
    with app.app_context():
        db.session.commit()
        db.engine.dispose()
    data = b"".join(path.read_bytes() for path in Path(app.instance_path).glob("*.db*"))
    assert secret.encode() not in data and token.encode() not in data
    assert secret not in caplog.text and token[:-1] not in caplog.text


# --- CLI ---------------------------------------------------------------------------------------


def test_cli_key_lifecycle(app):
    make_site(app, "cli.example.com")
    runner = app.test_cli_runner()
    created = runner.invoke(
        args=["keys", "create", "--site", "https://CLI.example.com/", "--name", "Prod"]
    )
    assert created.exit_code == 0
    token = created.stdout.strip()
    assert TOKEN_RE.fullmatch(token)  # the token alone on stdout
    key_id = tokens.parse(token).key_id
    listed = runner.invoke(args=["keys", "list", "--site", "cli.example.com"])
    assert key_id in listed.stdout and "active" in listed.stdout and token not in listed.stdout
    rotated = runner.invoke(args=["keys", "rotate", key_id, "--expire-old-in", "1h"])
    assert rotated.exit_code == 0 and TOKEN_RE.fullmatch(rotated.stdout.strip())
    assert runner.invoke(args=["keys", "revoke", key_id]).exit_code == 0
    assert "revoked" in runner.invoke(args=["keys", "list", "--site", "cli.example.com"]).stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["keys", "create", "--site", "nowhere.example.com", "--name", "x"], "no site"),
        (["keys", "revoke", "nokey"], "no key"),
        (["keys", "rotate", "nokey"], "no key"),
        (["keys", "set-limit", "nokey", "10 per second"], "no key"),
        (["users", "create", "bad", "--password", "long enough pw"], "not an email"),
        (["users", "create", "u@example.com", "--password", "short"], "at least 10"),
        (["sites", "create", "example.org", "--owner", "nobody@example.com"], "no user"),
    ],
)
def test_cli_refusals_exit_non_zero_with_one_line(app, args, message):
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_refuses_the_eleventh_key(app):
    make_site(app, "cap.example.com")
    runner = app.test_cli_runner()
    for n in range(10):
        assert (
            runner.invoke(
                args=["keys", "create", "--site", "cap.example.com", "--name", f"k{n}"]
            ).exit_code
            == 0
        )
    result = runner.invoke(args=["keys", "create", "--site", "cap.example.com", "--name", "k10"])
    assert result.exit_code == 1 and "Revoke one first" in result.stderr


def test_cli_users_and_sites(app):
    runner = app.test_cli_runner()
    assert (
        runner.invoke(
            args=["users", "create", "New@Example.com", "--password", "long enough pw"]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            args=["sites", "create", "https://Shop.example.com/", "--owner", "new@example.com"]
        ).exit_code
        == 0
    )
    dup = runner.invoke(args=["users", "create", "new@example.com", "--password", "long enough pw"])
    assert dup.exit_code == 1 and "already exists" in dup.stderr
    with app.app_context():
        assert db.session.scalar(select(Site.domain)) == "shop.example.com"


# (revoked, expires relative to now) → active? The model's one rule, in Python and in SQL.
ACTIVE_CASES = [
    pytest.param(False, None, True, id="plain"),
    pytest.param(True, None, False, id="revoked"),
    pytest.param(False, timedelta(seconds=1), True, id="expires-later"),
    pytest.param(False, timedelta(0), False, id="expires-exactly-now"),
    pytest.param(False, -timedelta(seconds=1), False, id="expired"),
    pytest.param(True, timedelta(hours=1), False, id="revoked-in-grace"),
]


@pytest.mark.parametrize(("revoked", "expires_in", "active"), ACTIVE_CASES)
def test_active_rule_agrees_in_python_and_sql(app, revoked, expires_in, active):
    site_id = make_site(app)
    key_id, token = create(app, site_id)
    now = utcnow()
    with app.app_context():
        key = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        key.revoked_at = now - timedelta(minutes=1) if revoked else None
        key.expires_at = now + expires_in if expires_in is not None else None
        db.session.commit()
        in_python = key.active_at(now)
        in_sql = db.session.scalar(select(ApiKey.active_at(now)).where(ApiKey.id == key.id))
    try:
        looked_up = auth(app, f"Bearer {token}", now).key_id
    except apikeys.AuthFailure as failure:
        looked_up = failure.code
    assert in_python is active
    assert bool(in_sql) is active
    assert looked_up == (key_id if active else "revoked_token")


def _race_rotate(instance: str, key_id: str, grace: str, start, results) -> None:
    """Rotate one key in a separate process, after the start signal."""
    app = _make_app(instance)
    with app.app_context():
        key = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        start.wait()
        try:
            apikeys.rotate_key(key, grace, None)
            results.put("rotated")
        except apikeys.KeyRefused:
            results.put("refused")


@pytest.mark.parametrize("grace", ["now", "1h"])
def test_racing_rotations_of_one_key_rotate_it_once(app, grace):
    site_id = make_site(app)
    for n in range(8):
        create(app, site_id, f"key {n}")
    key_id, _ = create(app, site_id, "rotated")  # 9 active keys
    context = racing_context()
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(
            target=_race_rotate, args=(app.instance_path, key_id, grace, start, results)
        )
        for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = sorted(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
    assert outcomes == ["refused"] * 7 + ["rotated"]
    with app.app_context():
        now = utcnow()
        active = db.session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.active_at(now))
        )
        named = db.session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.name == "rotated")
        )
    assert active == (9 if grace == "now" else 10)
    assert named == 2  # the old key and exactly one successor


def test_a_rotated_key_cannot_be_rotated_again(app):
    site_id = make_site(app)
    key_id, _ = create(app, site_id)
    with app.app_context():
        key = db.session.scalar(select(ApiKey).where(ApiKey.key_id == key_id))
        apikeys.rotate_key(key, "24h", None)
        with pytest.raises(apikeys.KeyRefused, match="already rotated"):
            apikeys.rotate_key(key, "24h", None)
